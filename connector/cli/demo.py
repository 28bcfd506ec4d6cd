"""`storelink demo`: the whole product shown working on this machine (the steps live in `connector.demo`)."""

from __future__ import annotations

from connector.demo.command import demo

__all__ = ["demo"]
