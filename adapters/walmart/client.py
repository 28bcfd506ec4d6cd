"""HTTP client of one seller's Walmart Marketplace API: token, headers, pacing, retries and error translation.

One `WalmartClient` per seller, on the `requests.Session` it is given. What it does on every call:

- Token: `POST /v3/token` (Basic client id and secret, `grant_type=client_credentials`), cached until
  `TOKEN_REFRESH_MARGIN_SECONDS` before its expiry (900 s), and fetched again once when a call is refused
  with 401 or an `INVALID_TOKEN*` code.
- Headers: `WM_SEC.ACCESS_TOKEN`, a fresh `WM_QOS.CORRELATION_ID` (uuid4, logged with every failure),
  `WM_SVC.NAME` and `Accept: application/json`; `Content-Type: application/json` with a JSON body.
- Pacing: `X-Current-Token-Count` and `X-Next-Replenishment-Time` are read on every response, per endpoint;
  when the count reaches 0 the next call to that endpoint waits until the replenishment time (or, when that
  is further away than `max_pacing_seconds`, fails at once with `RetryableError(retry_after=...)` for the
  job layer to wait). A 429 blocks its endpoint for its `Retry-After` (else the replenishment time).
- Retries (tenacity, through `connector.infra.http.retrying`, bounded): 429, 5xx, 408 and network failures only.
  A call that is not safe to repeat (`repeatable=False`, the Multichannel order create) is sent again only
  after failures proving Walmart did not act on it (429, refused connection).
- Errors: both envelopes (`{"errors": [...]}` and the gateway's `{"error": [...]}`, entries with
  `description` or `message`) and the Multichannel `{"status": "FAIL", ...}` answer become `RetryableError`,
  `AuthError`, `ValidationError`, `NotFoundError` or `PermanentError`, with Walmart's code and description
  and the correlation id in the message, and the codes in `details`.

Pacing state is this client's (one seller); other processes of the same seller are not seen, which the
replenishment headers correct on their next response.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

import requests
import urllib3.exceptions

from adapters.walmart import const
from connector.domain.errors import (
    AuthError,
    NotFoundError,
    PermanentError,
    RetryableError,
    StorelinkError,
    ValidationError,
)
from connector.domain.ports import HttpOptions
from connector.infra.http import (
    body_excerpt,
    parse_retry_after,
    retrying,
    safe_url,
    translate,
    transport_errors,
)

logger = logging.getLogger(__name__)

SAFE_TO_REPEAT: Final = frozenset({"rate_limited", "connect", "paced"})
"""Failures after which a request that must not run twice may be sent again: Walmart never received it."""
_MAX_DESCRIPTION: Final = 300


def encode_query(params: Mapping[str, object]) -> str:
    """`params` as a query string, every reserved character percent-encoded (a space as `%20`, `@` as `%40`):
    what Walmart asks of SKUs and feed ids. None values are left out."""
    return "&".join(
        f"{quote(str(key), safe='')}={quote(str(value), safe='')}"
        for key, value in params.items()
        if value is not None
    )


def path_segment(value: str) -> str:
    """One URL path segment (a SKU), percent-encoded entirely."""
    return quote(value, safe="")


def parse_replenishment(value: str | None, now: float) -> float | None:
    """`X-Next-Replenishment-Time` as a wall-clock time (epoch seconds); None when absent or unreadable.

    Its format is not documented; accepted are epoch milliseconds, epoch seconds, a number of seconds from
    now (small numbers), ISO 8601 and HTTP dates.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            delay = parse_retry_after(text)
            return None if delay is None else now + delay
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if number != number or number < 0:  # NaN or negative
        return None
    if number >= 1e11:
        return number / 1000.0
    if number >= 1e9:
        return number
    return now + number


def error_entries(body: object) -> list[dict[str, Any]]:
    """The error objects of either envelope: `errors` (resource APIs, Multichannel) or `error` (gateway)."""
    if not isinstance(body, Mapping):
        return []
    for key in ("errors", "error"):
        found = body.get(key)
        if isinstance(found, Mapping):
            inner = found.get("error")
            found = inner if isinstance(inner, list) else [found]
        if isinstance(found, list):
            entries = [entry for entry in found if isinstance(entry, Mapping)]
            if entries:
                return [dict(entry) for entry in entries]
    return []


def _description(entry: Mapping[str, Any]) -> str:
    for key in ("description", "message", "info"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 1] + "…"
    return ""


def _codes(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(entry["code"]) for entry in entries if entry.get("code")]


def _has_prefix(codes: Sequence[str], prefix: str) -> bool:
    return any(code.upper().startswith(prefix) for code in codes)


def classify(
    status: int,
    entries: Sequence[Mapping[str, Any]],
    *,
    where: str,
    correlation_id: str,
    retry_after: float | None = None,
    excerpt: str = "",
) -> StorelinkError:
    """The taxonomy error of a failed Walmart answer (HTTP `status`, error `entries` of either envelope)."""
    codes = _codes(entries)
    first = entries[0] if entries else {}
    code = codes[0] if codes else ""
    text = _description(first) or excerpt
    summary = ": ".join(part for part in (code, text) if part)
    message = f"Walmart {where}: HTTP {status}" + (f" {summary}" if summary else "")
    message += f" (correlation id {correlation_id})"
    details: dict[str, object] = {
        "status": status,
        "store_code": code or None,
        "codes": codes,
        "correlation_id": correlation_id,
        "errors": [dict(entry) for entry in entries[:5]],
    }
    field = first.get("field")
    if isinstance(field, str) and field:
        details["field"] = field
    if status == 429 or _has_prefix(codes, "REQUEST_THRESHOLD_VIOLATED"):
        return RetryableError(message, retry_after=retry_after, code="rate_limited", details=details)
    if status >= 500 or status == 408:
        return RetryableError(message, retry_after=retry_after, code="walmart_unavailable", details=details)
    if _has_prefix(codes, "INVALID_TOKEN") or status == 401:
        details["token_refused"] = True
        return AuthError(message, code="unauthorized", details=details)
    if _has_prefix(codes, "FORBIDDEN") or (
        status == 403 and (not codes or _has_prefix(codes, "UNAUTHORIZED"))
    ):
        return AuthError(message, code="forbidden", details=details)  # a scope the keys were not granted
    if status == 403:  # refused for what was asked (a seller not enrolled in a program), not for the keys
        return PermanentError(message, code="forbidden_request", details=details)
    if status == 404:
        return NotFoundError(message, code="not_found", details=details)
    if status in (400, 422):
        return ValidationError(message, code="invalid_request", details=details)
    return PermanentError(message, code=f"http_{status}", details=details)


class _DoNotRepeatError(Exception):
    """Carries a retryable failure out of the retry loop when sending the request again could act twice."""

    def __init__(self, error: RetryableError) -> None:
        super().__init__(str(error))
        self.error = error


def _refused(exc: requests.ConnectionError) -> bool:
    """True when no connection was made (so no request reached Walmart)."""
    reason: object = exc
    for _ in range(8):
        if isinstance(reason, ConnectionRefusedError | urllib3.exceptions.NewConnectionError):
            return True
        if not isinstance(reason, BaseException):
            return False
        first = reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None
        reason = getattr(reason, "reason", None) or first or reason.__cause__ or reason.__context__
    return False


class WalmartClient:
    """The Marketplace API of one seller at `base_url` (production, sandbox or an emulator)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        http: HttpOptions,
        session: requests.Session,
        base_url: str,
        *,
        service_name: str = const.SERVICE_NAME,
        send_basic_auth: bool = False,
        max_pacing_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise AuthError("Walmart credentials need client_id and client_secret", code="no_credentials")
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._http = http
        self._session = session
        self._service_name = service_name
        self._send_basic_auth = send_basic_auth
        self._max_pacing = max_pacing_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self._wall = wall
        self._token: str | None = None
        self._token_expires_at = 0.0
        self.blocked_until: dict[str, float] = {}
        """Endpoint -> wall-clock time before which it has no request tokens left."""
        self.token_counts: dict[str, int] = {}
        """Endpoint -> `X-Current-Token-Count` as last reported."""

    @property
    def session(self) -> requests.Session:
        return self._session

    # -- token -------------------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A token valid for a while longer: the cached one, or a new one."""
        if self._token is None or self._monotonic() >= self._token_expires_at:
            self.fetch_token()
        assert self._token is not None
        return self._token

    def fetch_token(self) -> str:
        """Request a new access token (client credentials); AuthError when Walmart refuses the keys."""
        body = self._token_request()
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise PermanentError("Walmart's token answer has no access_token", code="bad_token_response")
        lifetime = body.get("expires_in")
        try:
            seconds = float(lifetime) if lifetime is not None else const.TOKEN_LIFETIME_SECONDS
        except (TypeError, ValueError):
            seconds = const.TOKEN_LIFETIME_SECONDS
        margin = min(const.TOKEN_REFRESH_MARGIN_SECONDS, seconds / 2)
        self._token = token
        self._token_expires_at = self._monotonic() + max(0.0, seconds - margin)
        logger.info(
            "walmart access token obtained", extra={"client_id": self._client_id, "expires_in": seconds}
        )
        return token

    def forget_token(self) -> None:
        self._token = None
        self._token_expires_at = 0.0

    @retrying(attempts=3, initial=1.0, maximum=8.0, max_retry_after=30.0)
    def _token_request(self) -> Any:
        headers = {
            "Authorization": self._basic,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            const.SERVICE_HEADER: self._service_name,
        }
        try:
            return self._exchange(
                "POST",
                const.TOKEN_PATH,
                f"POST {const.TOKEN_PATH}",
                headers,
                b"grant_type=client_credentials",
            )
        except AuthError as exc:
            raise AuthError(
                f"Walmart refused the client id and secret of {self._client_id}: {exc.message}",
                code="bad_credentials",
                details={**exc.details, "token_refused": False},
            ) from None
        except ValidationError as exc:  # Walmart answers a bad key pair with 400 as well
            raise AuthError(
                f"Walmart refused the client id and secret of {self._client_id}: {exc.message}",
                code="bad_credentials",
                details=exc.details,
            ) from None

    # -- requests ----------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        query: str | None = None,
        body: object = None,
        endpoint: str | None = None,
        repeatable: bool = True,
    ) -> Any:
        """The decoded JSON answer of one call (floats as Decimal; `{}` for an empty body).

        `params` are percent-encoded here; `query` is a ready query string (Walmart's order cursor, sent
        verbatim). `endpoint` names the rate-limit bucket (default: method and `path`, so give a template for
        paths carrying a SKU). `repeatable=False` is for creates without an idempotency key.
        """
        target = path
        if query:
            target += query if query.startswith("?") else f"?{query}"
        elif params:
            encoded = encode_query(params)
            if encoded:
                target += f"?{encoded}"
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        bucket = endpoint or f"{method} {path}"
        refreshed = False
        while True:
            try:
                return self._with_retries(method, target, bucket, payload, repeatable)
            except _DoNotRepeatError as stop:
                raise stop.error from None
            except AuthError as exc:
                if refreshed or not exc.details.get("token_refused"):
                    raise
                refreshed = True
                self.forget_token()
                logger.info(
                    "walmart refused the access token, fetching a new one",
                    extra={"client_id": self._client_id, "endpoint": bucket},
                )

    @retrying(attempts=4, initial=1.0, maximum=16.0, max_retry_after=60.0)
    def _with_retries(
        self, method: str, target: str, bucket: str, payload: bytes | None, repeatable: bool
    ) -> Any:
        headers = {
            const.ACCESS_TOKEN_HEADER: self.access_token(),
            const.SERVICE_HEADER: self._service_name,
            "Accept": "application/json",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._send_basic_auth:
            headers["Authorization"] = self._basic
        try:
            return self._exchange(method, target, bucket, headers, payload)
        except RetryableError as exc:
            if not repeatable and exc.code not in SAFE_TO_REPEAT:
                raise _DoNotRepeatError(exc) from exc
            raise

    def _pace(self, bucket: str) -> None:
        until = self.blocked_until.get(bucket)
        if until is None:
            return
        wait = until - self._wall()
        if wait <= 0:
            del self.blocked_until[bucket]
            return
        if wait > self._max_pacing:
            raise RetryableError(
                f"Walmart rate limit of {bucket} exhausted for {wait:.0f} s",
                retry_after=wait,
                code="paced",
                details={"endpoint": bucket},
            )
        logger.info(
            "walmart rate limit exhausted, waiting for replenishment",
            extra={"endpoint": bucket, "wait_seconds": round(wait, 3)},
        )
        self._sleep(wait)
        self.blocked_until.pop(bucket, None)

    def _observe(self, bucket: str, response: requests.Response) -> float | None:
        """Record the endpoint's remaining tokens; returns the replenishment time when it has none left."""
        now = self._wall()
        replenished = parse_replenishment(response.headers.get(const.REPLENISHMENT_HEADER), now)
        raw_count = response.headers.get(const.TOKEN_COUNT_HEADER)
        if raw_count is None:
            return replenished
        try:
            count = int(float(raw_count.strip()))
        except ValueError:
            return replenished
        self.token_counts[bucket] = count
        if count <= 0 and replenished is not None and replenished > now:
            self.blocked_until[bucket] = replenished
        return replenished

    def _exchange(
        self, method: str, target: str, bucket: str, headers: dict[str, str], payload: bytes | None
    ) -> Any:
        """Send one request and decode its answer, or raise its taxonomy error (logged with its correlation id)."""
        self._pace(bucket)
        correlation_id = str(uuid.uuid4())
        headers = {**headers, const.CORRELATION_HEADER: correlation_id}
        url = self.base_url + target
        where = f"{method} {target.split('?', 1)[0]}"
        try:
            response = self._session.request(
                method, url, data=payload, headers=headers, timeout=self._http.timeout
            )
        except requests.ConnectionError as exc:
            error = (
                RetryableError(f"could not connect to {safe_url(url)}", code="connect")
                if isinstance(exc, requests.exceptions.ConnectTimeout) or _refused(exc)
                else translate(exc)
            )
            self._log_failure(where, None, correlation_id, error)
            raise error from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = translate(exc)
            self._log_failure(where, None, correlation_id, error)
            raise error from exc
        try:
            replenished = self._observe(bucket, response)
            if response.status_code >= 400:
                failure = self._failure(response, where, correlation_id, bucket, replenished)
                self._log_failure(where, response.status_code, correlation_id, failure)
                raise failure
            with transport_errors():
                raw = response.content
        finally:
            response.close()
        decoded = self._decode(raw, where, correlation_id)
        if isinstance(decoded, Mapping) and str(decoded.get("status", "")).upper() == "FAIL":
            failure = classify(
                400 if response.status_code < 400 else response.status_code,
                error_entries(decoded),
                where=where,
                correlation_id=correlation_id,
            )
            self._log_failure(where, response.status_code, correlation_id, failure)
            raise failure
        return decoded

    def _failure(
        self,
        response: requests.Response,
        where: str,
        correlation_id: str,
        bucket: str,
        replenished: float | None,
    ) -> StorelinkError:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        now = self._wall()
        if status == 429:
            if retry_after is None and replenished is not None and replenished > now:
                retry_after = replenished - now
            if retry_after is not None:
                self.blocked_until[bucket] = now + retry_after
        with transport_errors():
            raw = response.content or b""
        entries: list[dict[str, Any]] = []
        try:
            entries = error_entries(json.loads(raw, parse_float=Decimal)) if raw else []
        except (ValueError, UnicodeDecodeError):
            entries = []
        excerpt = "" if entries else body_excerpt(response)
        return classify(
            status,
            entries,
            where=where,
            correlation_id=correlation_id,
            retry_after=retry_after,
            excerpt=excerpt,
        )

    @staticmethod
    def _decode(raw: bytes, where: str, correlation_id: str) -> Any:
        if not raw.strip():
            return {}
        try:
            return json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise RetryableError(
                f"Walmart {where}: the answer is not JSON (correlation id {correlation_id})",
                code="bad_response",
                details={"correlation_id": correlation_id},
            ) from None

    def _log_failure(
        self, where: str, status: int | None, correlation_id: str, error: StorelinkError
    ) -> None:
        logger.warning(
            "walmart request failed",
            extra={
                "client_id": self._client_id,
                "request": where,
                "status": status,
                "correlation_id": correlation_id,
                "error_code": error.code,
                "store_code": error.details.get("store_code"),
                "error": error.message,
            },
        )
