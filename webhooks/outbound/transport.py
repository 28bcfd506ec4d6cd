"""The HTTP POST of one delivery attempt: no redirects, bounded time, only to addresses checked at connect.

The destination's address is resolved and checked when the socket is opened, and the socket connects to
exactly the address that passed (so a name that resolved to a public address when the endpoint was saved and
to a private one now, DNS rebinding, is refused). TLS still verifies the certificate for the URL's host name.
Proxies from the environment are ignored: they would connect on our behalf, unchecked.

The connections are a guarded requests adapter's (its pools, TLS settings and certificate bundle), but a POST
goes straight to the urllib3 pool of its endpoint's origin, found once per URL, not through a requests
session: its layers (settings merged, hooks, cookies, the request prepared again) cost as much CPU as the
POST itself, and a dispatcher sends thousands.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from urllib3 import BaseHTTPResponse, HTTPConnectionPool, Timeout
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from connector.infra.addresses import BlockedConnectionError, GuardedAdapter
from connector.infra.http import parse_retry_after

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
NO_RETRIES = Retry(0, read=False)
"""One attempt per POST (the delivery's schedule retries), a failure wrapped as requests' adapter has it."""
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


_adapters: dict[tuple[int, bool], GuardedAdapter] = {}
_lock = threading.Lock()
_origins: dict[tuple[int, bool, str], _Origin] = {}
MAX_ORIGINS = 10_000


def adapter_for(allow_private: bool) -> GuardedAdapter:
    """The process's connection pools for this address policy (never shared across forks)."""
    key = (os.getpid(), allow_private)
    with _lock:
        existing = _adapters.get(key)
        if existing is None:
            existing = _adapters[key] = GuardedAdapter(allow_private=allow_private, refusal_hint=PRIVATE_HINT)
        return existing


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a URL's POSTs go: the adapter, its pool key for the URL (scheme, host, port and TLS settings, as
    requests would choose them) and the request target (path and query)."""

    adapter: GuardedAdapter
    host_params: Any
    pool_kwargs: Any
    path: str

    def pool(self) -> HTTPConnectionPool:
        """The origin's pool, looked up each time: the pool manager may have closed an idle one since."""
        manager = self.adapter.poolmanager
        return manager.connection_from_host(**self.host_params, pool_kwargs=self.pool_kwargs)


def _origin(url: str, allow_private: bool) -> _Origin:
    adapter = adapter_for(allow_private)
    key = (os.getpid(), allow_private, url)
    found = _origins.get(key)
    if found is not None and found.adapter is adapter:
        return found
    prepared = requests.Request("POST", url).prepare()
    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(prepared, verify=True)
    found = _Origin(adapter, host_params, pool_kwargs, prepared.path_url)
    with _lock:
        if len(_origins) >= MAX_ORIGINS:
            _origins.clear()
        _origins[key] = found
    return found


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
    if isinstance(exc, requests.Timeout) or isinstance(reason, Urllib3Timeout):
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
    sent_headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Content-Type": "application/json", **headers}
    started = time.monotonic()
    try:
        origin = _origin(url, allow_private)
        response: BaseHTTPResponse = origin.pool().urlopen(
            "POST",
            origin.path,
            body=body,
            headers=sent_headers,
            redirect=False,
            assert_same_host=False,
            retries=NO_RETRIES,
            timeout=Timeout(connect=min(timeout, 10.0), read=timeout),
            preload_content=False,
            decode_content=False,
        )
    except (HTTPError, OSError, requests.RequestException) as exc:
        failure, blocked = _describe(exc)
        duration = int((time.monotonic() - started) * 1000)
        logger.info("webhook post failed", extra={"error": failure, "duration_ms": duration})
        return SendResult(None, duration, error=failure, blocked=blocked)
    excerpt, error = _read(response)
    duration = int((time.monotonic() - started) * 1000)
    return SendResult(
        response.status,
        duration,
        excerpt=excerpt,
        error=error,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _read(response: BaseHTTPResponse) -> tuple[str | None, str | None]:
    """The answer's excerpt (or the error that cut it short). A short remainder is read to its end so that
    the connection goes back to the pool; a long one is not worth the wait, and the connection goes."""
    try:
        raw = response.read(EXCERPT_BYTES, decode_content=True) or b""
        if not response.closed:
            response.read(DRAIN_BYTES, decode_content=False)
        return raw.decode("utf-8", errors="replace"), None
    except Exception as exc:  # the status is known; a body cut short does not change the outcome
        return None, _describe(exc)[0]
    finally:
        if not response.closed:
            response.close()  # the connection goes; the pool opens a new one in its place
        response.release_conn()
