"""How the Platform API and its webhook payloads write a moment: ISO 8601 text, as the value was stored."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    """`value` as ISO 8601 text (`datetime.isoformat`, offset kept when it has one); None stays None."""
    return value.isoformat() if value is not None else None
