"""The fault both store emulators can answer an API request with: a 5xx, a 429 with Retry-After, added latency
(past the client's timeout it is a timeout; the request is still carried out) or a dropped connection. Each
emulator plans and draws these faults its own way (see its faults module)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True, slots=True)
class ApiFault:
    """How to answer one API request. `status` 200 means answer normally (after `latency` seconds)."""

    status: int = 200
    latency: float = 0.0
    retry_after: str | None = None
    drop: bool = False

    @classmethod
    def server_error(cls, status: int = 503) -> Self:
        return cls(status=status)

    @classmethod
    def too_many_requests(cls, retry_after: float = 2.0) -> Self:
        return cls(status=429, retry_after=f"{retry_after:g}")

    @classmethod
    def slow(cls, seconds: float) -> Self:
        """Answer normally after `seconds` (beyond the client's timeout it is a timeout)."""
        return cls(latency=seconds)

    @classmethod
    def dropped(cls) -> Self:
        return cls(drop=True)
