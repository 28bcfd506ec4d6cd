"""The HTTP POST of one delivery attempt: no redirects, bounded time, only to addresses checked at connect.

The destination's address is resolved and checked when the socket is opened, and the socket connects to
exactly the address that passed (so a name that resolved to a public address when the endpoint was saved and
to a private one now, DNS rebinding, is refused). TLS still verifies the certificate for the URL's host name.
Proxies from the environment are ignored: they would connect on our behalf, unchecked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import requests
from urllib3.exceptions import NewConnectionError

from connector.infra.addresses import BlockedConnectionError, GuardedAdapter
from connector.infra.http import parse_retry_after

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
EXCERPT_BYTES = 1024
DRAIN_BYTES = 64 * 1024
"""Most of a response body read past the excerpt so that its connection can be used again."""
ERROR_CHARS = 500
USER_AGENT = "Storelink-Webhooks/1.0"
PRIVATE_HINT = (
    " (WEBHOOK_ALLOW_PRIVATE_URLS=true allows private, loopback and link-local addresses; it must be set"
    " for the processes that send: `storelink up`, `storelink worker`)"
)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one POST gave: a status code (None when no response came), timing, a capped body excerpt, an
    error description and the Retry-After delay in seconds when the receiver sent one."""

    status_code: int | None
    duration_ms: int
    excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None
    blocked: bool = False


_sessions: dict[tuple[int, bool], requests.Session] = {}
_sessions_lock = threading.Lock()


def session_for(allow_private: bool) -> requests.Session:
    """The process's session for this address policy (never shared across forks)."""
    key = (os.getpid(), allow_private)
    with _sessions_lock:
        existing = _sessions.get(key)
        if existing is None:
            existing = requests.Session()
            existing.trust_env = False
            existing.max_redirects = 0
            existing.headers["User-Agent"] = USER_AGENT
            adapter = GuardedAdapter(allow_private=allow_private, refusal_hint=PRIVATE_HINT)
            existing.mount("http://", adapter)
            existing.mount("https://", adapter)
            _sessions[key] = existing
        return existing


def _describe(exc: BaseException) -> tuple[str, bool]:
    """A short error text without the URL (it may carry tokens), and whether the address was refused."""
    reason: BaseException | None = exc
    for _ in range(5):
        inner = getattr(reason, "reason", None) if reason is not None else None
        if inner is None and reason is not None and reason.args and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        if inner is None or not isinstance(inner, BaseException):
            break
        reason = inner
    if isinstance(reason, BlockedConnectionError):
        return f"address refused: {reason._message}", True
    if isinstance(reason, NewConnectionError):
        return f"connection failed: {reason._message}"[:ERROR_CHARS], False
    if isinstance(exc, requests.Timeout):
        return "timed out", False
    text = type(reason or exc).__name__
    detail = str(reason or exc)
    if detail and "url:" not in detail and "host=" not in detail:
        text = f"{text}: {detail}"
    return text[:ERROR_CHARS], False


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    allow_private: bool = False,
) -> SendResult:
    """POST `body` to `url` once; never raises for transport failures, they are in the result."""
    session = session_for(allow_private)
    sent_headers = {"Content-Type": "application/json", **headers}
    started = time.monotonic()
    try:
        response = session.post(
            url,
            data=body,
            headers=sent_headers,
            timeout=(min(timeout, 10.0), timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as exc:
        failure, blocked = _describe(exc)
        duration = int((time.monotonic() - started) * 1000)
        logger.info("webhook post failed", extra={"error": failure, "duration_ms": duration})
        return SendResult(None, duration, error=failure, blocked=blocked)
    excerpt: str | None
    error: str | None = None
    try:
        raw = response.raw.read(EXCERPT_BYTES, decode_content=True) or b""
        excerpt = raw.decode("utf-8", errors="replace")
        # Read a short remainder to its end, so urllib3 puts the connection back in the pool (a body left
        # unread makes `close` drop it); a long one is not worth the wait, and the connection goes.
        if not response.raw.closed:
            response.raw.read(DRAIN_BYTES, decode_content=False)
    except Exception as exc:  # the status is known; a body cut short does not change the outcome
        excerpt = None
        error = _describe(exc)[0]
    finally:
        response.close()
    duration = int((time.monotonic() - started) * 1000)
    return SendResult(
        response.status_code,
        duration,
        excerpt=excerpt,
        error=error,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )
