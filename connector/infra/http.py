"""HTTP transport for adapters: sessions, failure-to-error translation and bounded transport retries.

Adapters call stores through a `requests.Session` from `build_session`, turn every transport failure into the
error taxonomy of `connector.domain.errors` with `translate` / `raise_for_status` / `transport_errors`, and wrap a
single call in `retrying(...)` for short in-process retries. Longer waits belong to the job layer: a
`RetryableError` whose `retry_after` is beyond what `retrying` will sleep is re-raised at once.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import tenacity
import urllib3.exceptions
from requests import exceptions as rexc

from connector.domain.errors import AuthError, PermanentError, RetryableError, StorelinkError
from connector.domain.ports import HttpOptions
from connector.infra.addresses import GuardedAdapter, blocked_reason

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

EXCERPT_CHARS = 200
_EXCERPT_READ_BYTES = 4096
_RETRYABLE_4XX = frozenset({408, 429})
# 5xx answers that say the server will never do this request (not implemented, HTTP version refused).
_PERMANENT_5XX = frozenset({501, 505})


def build_session(options: HttpOptions) -> requests.Session:
    """A new session carrying the configured User-Agent; nothing is shared between sessions."""
    session = requests.Session()
    session.headers["User-Agent"] = options.user_agent
    session.max_redirects = 5
    return session


def guarded_session(options: HttpOptions, refusal_hint: str = "") -> requests.Session:
    """`build_session` whose every connection, redirects included, goes only to an address allowed by
    `connector.infra.addresses` (public ones, or any with `options.allow_private`); environment proxies are not
    used, since they would connect on our behalf unchecked. `refusal_hint` ends the refusal's message."""
    session = build_session(options)
    session.trust_env = False
    adapter = GuardedAdapter(allow_private=options.allow_private, refusal_hint=refusal_hint)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def safe_url(url: str | None) -> str:
    """`url` without credentials, query or fragment, fit for messages and logs (feed URLs carry tokens)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date); None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def body_excerpt(response: requests.Response, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of the body, whitespace collapsed; reads no more than a few KiB of it."""
    try:
        chunk = next(response.iter_content(_EXCERPT_READ_BYTES), b"")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        return ""
    raw = chunk if isinstance(chunk, bytes) else str(chunk).encode()
    text = " ".join(raw.decode(response.encoding or "utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_for_response(response: requests.Response, *, quote_body: bool = True) -> StorelinkError | None:
    """The taxonomy error for a failed response, None for anything below 400.

    `quote_body`: put an excerpt of the body in the message (a store's error text helps support); False for
    fetches of arbitrary URLs (feeds), whose content must never be echoed back to whoever named the URL."""
    status = response.status_code
    if status < 400:
        return None
    where = safe_url(response.url)
    details: dict[str, object] = {"status": status, "url": where}
    if (status >= 500 and status not in _PERMANENT_5XX) or status in _RETRYABLE_4XX:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        code = "rate_limited" if status == 429 else "http_unavailable"
        return RetryableError(
            f"HTTP {status} from {where}", retry_after=retry_after, code=code, details=details
        )
    excerpt = body_excerpt(response) if quote_body else ""
    message = f"HTTP {status} from {where}" + (f": {excerpt}" if excerpt else "")
    if excerpt:
        details["body"] = excerpt
    if status in (401, 403):
        return AuthError(message, code="auth", details=details)
    return PermanentError(message, code=f"http_{status}", details=details)


def raise_for_status(response: requests.Response, *, quote_body: bool = True) -> requests.Response:
    """Return `response` when it succeeded; otherwise close it and raise its taxonomy error."""
    error = error_for_response(response, quote_body=quote_body)
    if error is None:
        return response
    response.close()
    raise error


def _error_for_exception(exc: BaseException) -> StorelinkError:
    if isinstance(exc, StorelinkError):
        return exc
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return error_for_response(exc.response) or PermanentError(str(exc), code="http_error")
    url = safe_url(getattr(getattr(exc, "request", None), "url", None))
    where = f" ({url})" if url else ""
    name = type(exc).__name__
    refused = blocked_reason(exc)
    if refused is not None:
        return PermanentError(f"address refused{where}: {refused}", code="address_not_allowed")
    if isinstance(
        exc,
        rexc.URLRequired | rexc.InvalidURL | rexc.InvalidSchema,
    ):
        return PermanentError(f"invalid URL{where}: {name}", code="invalid_url")
    if isinstance(exc, rexc.MissingSchema | rexc.InvalidHeader):
        return PermanentError(f"invalid request{where}: {name}", code="invalid_request")
    if isinstance(exc, requests.TooManyRedirects):
        return PermanentError(f"too many redirects{where}", code="too_many_redirects")
    if isinstance(exc, rexc.ContentDecodingError):
        return PermanentError(f"response body could not be decoded{where}", code="bad_encoding")
    if isinstance(exc, requests.Timeout):
        return RetryableError(f"timed out{where}: {name}", code="timeout")
    if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError):
        return RetryableError(f"transport failure{where}: {name}", code="network")
    raise TypeError(f"cannot translate {name} into a Storelink error") from exc


def translate(exc_or_response: requests.Response | BaseException) -> StorelinkError:
    """The taxonomy error for a failed response or a transport exception.

    Connection errors, timeouts, broken streams, 408, 429 and 5xx but 501 and 505 are `RetryableError` (429
    and 5xx carry Retry-After as `retry_after`); 401 and 403 are `AuthError`; other 4xx, 501, 505 and
    malformed requests are `PermanentError`. A successful response or an unrelated exception is a programming error (TypeError).
    """
    if isinstance(exc_or_response, requests.Response):
        error = error_for_response(exc_or_response)
        if error is None:
            raise TypeError(f"HTTP {exc_or_response.status_code} is not a failure")
        return error
    return _error_for_exception(exc_or_response)


@contextmanager
def transport_errors() -> Iterator[None]:
    """Turn `requests`/urllib3/socket exceptions raised inside the block into taxonomy errors."""
    try:
        yield
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _error_for_exception(exc) from exc


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class _Wait(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, or the server's Retry-After when it gave one."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return random.uniform(0, ceiling)


class _Stop(tenacity.stop.stop_base):
    """Stop after `attempts`, or at once when Retry-After asks for more than we sleep in-process."""

    def __init__(self, attempts: int, max_retry_after: float) -> None:
        self.attempts = attempts
        self.max_retry_after = max_retry_after

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self.attempts:
            return True
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return (
            isinstance(exc, RetryableError)
            and exc.retry_after is not None
            and exc.retry_after > self.max_retry_after
        )


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    logger.warning(
        "transient transport failure, retrying",
        extra={
            "attempt": retry_state.attempt_number,
            "wait_seconds": round(wait, 3),
            "error": str(exc),
            "error_code": getattr(exc, "code", None),
        },
    )


def retrying(
    *,
    attempts: int = 3,
    initial: float = 0.5,
    maximum: float = 8.0,
    max_retry_after: float = 30.0,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator retrying `RetryableError` up to `attempts` calls in all, then re-raising the last one.

    Waits are exponential (`initial`, doubling, capped at `maximum`) with full jitter, or exactly the error's
    `retry_after`; a `retry_after` above `max_retry_after` is re-raised at once for the job layer to honour.
    Every other exception passes through on the first failure.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        controller = tenacity.Retrying(
            sleep=lambda seconds: _sleep(seconds),
            stop=_Stop(attempts, max_retry_after),
            wait=_Wait(initial, maximum),
            retry=tenacity.retry_if_exception_type(RetryableError),
            before_sleep=_log_retry,
            reraise=True,
        )
        return controller.wraps(fn)

    return decorate
