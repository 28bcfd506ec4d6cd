"""`storelink sandbox`: the store emulators and the platform receiver on their own (the command lives in
`connector.demo.sandbox`)."""

from __future__ import annotations

from connector.demo.sandbox import sandbox

__all__ = ["sandbox"]
