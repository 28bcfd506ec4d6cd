"""The error taxonomy: every adapter and job failure is one of these, and it decides what happens next."""

from __future__ import annotations


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
