"""The error taxonomy: every adapter and job failure is one of these, and it decides what happens next."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StorelinkError(Exception):
    """Base of every error Storelink raises on purpose."""

    code = "storelink_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, object] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class RetryableError(StorelinkError):
    """Transient: network, 429, THROTTLED, 5xx. The job is retried, no sooner than `retry_after` seconds."""

    code = "retryable"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        details: dict[str, object] | None = None,
    ):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class PermanentError(StorelinkError):
    """Will fail the same way again (4xx, validation): recorded where support can see it, never retried."""

    code = "permanent"


class AuthError(PermanentError):
    """The store refused our credentials: the merchant is paused and a visible problem is raised."""

    code = "auth"


class NotFoundError(PermanentError):
    """A record the caller named does not exist."""

    code = "not_found"


class ValidationError(PermanentError):
    """Input that cannot be accepted; the message says which field and why."""

    code = "validation"


class RefusedError(PermanentError):
    """A request refused with an HTTP status and extra members for its problem document (a checkout or live
    shopping request the stock, the pin or the order's state does not allow)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message, code=code, details=extra)
        self.status = status
        self.extra = extra


@contextmanager
def unreadable_input(what: str) -> Iterator[None]:
    """Turn a parser's RecursionError (input nested deeper than Python can follow) or ValueError into a
    ValidationError naming `what`: adapters read store input inside this, so bad input is a 4xx, never a 500."""
    try:
        yield
    except RecursionError:
        raise ValidationError(f"{what} is nested too deeply to read", code="too_deep") from None
    except ValueError as exc:
        raise ValidationError(f"{what} is unreadable: {exc}", code="bad_body") from None
