"""HTTP client of one shop's Admin GraphQL API: auth header, cost-based pacing, retries and error translation.

One `ShopifyClient` per shop, with its own `requests.Session` (ShopifyAPI's global session is never used).
Every failure leaves as a `connector.domain.errors` type:

- HTTP 429 (Retry-After honoured), 5xx, network failures and GraphQL `THROTTLED` (which Shopify answers with
  HTTP 200) are `RetryableError` and are retried here a few times with `connector.infra.http.retrying`;
- 401 and 403 are `AuthError`; on a 401 the `on_unauthorized` hook (a token refresh) is called once and, when
  it says a new token is there, the request is sent once more;
- other top-level `errors` are `PermanentError` (`ACCESS_DENIED` is `AuthError`), unless the caller accepts
  partial data and some `data` came back;
- `userErrors` of a mutation payload are `ValidationError` (with a field) or `PermanentError`, field, message
  and code kept in `details`.

Pacing: the client keeps an estimate of the shop's leaky bucket from `extensions.cost.throttleStatus` and the
cost each document was last charged (`requestedQueryCost`); before sending, when the estimate lacks that
cost, it sleeps just long enough for the bucket to refill, so throttling is avoided rather than suffered.
Other clients of the same bucket (other workers) are accounted for: the refill that neither reached the
bucket nor was spent by this client is theirs, so each paces to its share of the restore rate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import requests
import urllib3.exceptions

from adapters.shopify import const
from connector.domain.errors import AuthError, PermanentError, RetryableError, StorelinkError, ValidationError
from connector.domain.ports import HttpOptions, RateLedger
from connector.infra.http import (
    build_session,
    raise_for_status,
    retrying,
    safe_url,
    translate,
    transport_errors,
)

logger = logging.getLogger(__name__)

TOKEN_HEADER: Final = "X-Shopify-Access-Token"  # noqa: S105 (a header name)
DEFAULT_THROTTLE_WAIT: Final = 1.0
MAX_PACING_SLEEP: Final = 30.0
MIN_SHARE: Final = 0.1
"""The least share of the restore rate a client paces itself to, however busy the others look."""
SHARE_WINDOW: Final = 0.5
"""Seconds of reports over which the others' spending is measured."""
SHARE_SMOOTHING: Final = 0.3
SHARED_MARGIN: Final = 1.0
"""While others share the bucket, a request waits for this many times its cost more (a standing reserve of
a few points, which costs no throughput)."""
UNKNOWN_COST: Final = 10.0
"""Points a document whose cost has not been seen yet reserves in the shared ledger (a typical mutation)."""
_SAFE_TO_REPEAT: Final = frozenset({"throttled", "rate_limited", "connect"})
"""Failures after which a non-idempotent mutation may be sent again: the store never executed it."""

TokenSource = str | Callable[[], str]


@dataclass(slots=True)
class Bucket:
    """The shop's query-cost bucket as this client sees it: `available` is its share of the points last
    reported, refilled at `restore_rate` points per second of which other clients of the same app and shop
    (other workers) are estimated to spend `others_rate`."""

    maximum: float
    available: float
    restore_rate: float
    observed_at: float
    others_rate: float = 0.0

    def rate(self) -> float:
        """Points a second this client can count on: the restore rate less what the others spend."""
        return max(self.restore_rate - self.others_rate, self.restore_rate * MIN_SHARE)

    def estimate(self, now: float) -> float:
        refilled = self.available + self.rate() * max(0.0, now - self.observed_at)
        return min(self.maximum, refilled)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until `cost` points are available (0 when they are, or can never be)."""
        if self.restore_rate <= 0 or cost > self.maximum:
            return 0.0
        missing = cost - self.estimate(now)
        return max(0.0, missing / self.rate())

    def spend(self, cost: float, now: float) -> None:
        self.available = self.estimate(now) - cost
        self.observed_at = now


class _DoNotRepeatError(Exception):
    """Carries a retryable failure out of the retry loop when repeating the request could do it twice."""

    def __init__(self, error: RetryableError) -> None:
        super().__init__(str(error))
        self.error = error


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return float(value)


def graphql_endpoint(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/admin/api/{const.API_VERSION}/graphql.json"


class ShopifyClient:
    """Admin GraphQL API of one shop. `base_url` (default `https://{shop_domain}`) points at an emulator."""

    def __init__(
        self,
        shop_domain: str,
        access_token: TokenSource,
        http: HttpOptions,
        session: requests.Session | None = None,
        base_url: str | None = None,
        *,
        on_unauthorized: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shop_domain = shop_domain
        self.base_url = (base_url or f"https://{shop_domain}").rstrip("/")
        self.endpoint = graphql_endpoint(self.base_url)
        self._token = access_token
        self._http = http
        self._session = session if session is not None else build_session(http)
        self._on_unauthorized = on_unauthorized
        self._sleep = sleep
        self._clock = clock
        self.bucket: Bucket | None = None
        self.ledger: RateLedger | None = None
        """The shop's bucket shared with the other workers (connector.domain.ports.RateLedger), when the core
        keeps one: requests reserve their cost there before they are sent."""
        self._reported: tuple[float, float] | None = (
            None  # (when, level) the others' spending is measured from
        )
        self._spent_since = 0.0
        self._costs: dict[str, float] = {}
        self.last_cost: dict[str, Any] | None = None

    @property
    def session(self) -> requests.Session:
        return self._session

    def _access_token(self) -> str:
        token = self._token() if callable(self._token) else self._token
        if not token:
            raise AuthError(f"no access token for {self.shop_domain}", code="no_token")
        return token

    # -- requests -----------------------------------------------------------------------------------------

    def execute(
        self,
        document: str,
        variables: Mapping[str, Any] | None = None,
        *,
        allow_partial: bool = False,
        repeatable: bool = True,
        expected_cost: float | None = None,
    ) -> dict[str, Any]:
        """The `data` of one GraphQL request.

        `repeatable=False` is for mutations without an idempotency key (orderCreate): they are sent again only
        after failures that prove the store did not run them (throttling, 429, refused connection); any other
        retryable failure is raised at once so the caller can look the result up before retrying.
        `allow_partial=True` returns `data` even when `errors` came with it (the errors are logged).
        """
        payload = {"query": document, "variables": dict(variables or {})}
        refreshed = False
        while True:
            try:
                return self._send_with_retries(payload, allow_partial, repeatable, expected_cost)
            except _DoNotRepeatError as stop:
                raise stop.error from None
            except AuthError as exc:
                if (
                    refreshed
                    or exc.details.get("status") != 401
                    or self._on_unauthorized is None
                    or not self._on_unauthorized()
                ):
                    raise
                refreshed = True
                logger.info(
                    "access token refreshed after 401, sending again", extra={"shop": self.shop_domain}
                )

    @retrying(attempts=5, initial=0.5, maximum=8.0, max_retry_after=30.0)
    def _send_with_retries(
        self, payload: dict[str, Any], allow_partial: bool, repeatable: bool, expected_cost: float | None
    ) -> dict[str, Any]:
        try:
            return self._send(payload, allow_partial, expected_cost)
        except RetryableError as exc:
            if not repeatable and exc.code not in _SAFE_TO_REPEAT:
                raise _DoNotRepeatError(exc) from exc
            raise

    def _pace(self, document: str, expected_cost: float | None) -> float:
        """Wait until the request's cost is there; the points reserved in the shared ledger (0 if none)."""
        cost = expected_cost if expected_cost is not None else self._costs.get(document)
        if not cost and self.ledger is not None:
            cost = UNKNOWN_COST  # a first request of its kind still waits its turn (the rest is refunded)
        if not cost:
            return 0.0
        if self.ledger is not None:
            wait = self.ledger.take(cost)
            if wait is not None:
                if wait > 0:
                    logger.debug(
                        "pacing before request", extra={"shop": self.shop_domain, "wait_seconds": wait}
                    )
                    self._sleep(min(wait, MAX_PACING_SLEEP))
                return cost
        if self.bucket is None:
            return 0.0
        now = self._clock()
        # Shared with other clients, the estimate can be off by what they just spent: wait for a margin too.
        margin = cost * SHARED_MARGIN if self.bucket.others_rate > 0 else 0.0
        wait = min(self.bucket.wait_for(cost + margin, now), MAX_PACING_SLEEP)
        if wait > 0:
            logger.debug("pacing before request", extra={"shop": self.shop_domain, "wait_seconds": wait})
            self._sleep(wait)
            now = self._clock()
        self.bucket.spend(cost, now)
        return 0.0

    def _send(
        self, payload: dict[str, Any], allow_partial: bool, expected_cost: float | None
    ) -> dict[str, Any]:
        document = payload["query"]
        reserved = self._pace(document, expected_cost)
        headers = {TOKEN_HEADER: self._access_token(), "Accept": "application/json"}
        try:
            response = self._session.post(
                self.endpoint, json=payload, headers=headers, timeout=self._http.timeout
            )
        except requests.ConnectionError as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout) or _refused(exc):
                raise RetryableError(
                    f"could not connect to {safe_url(self.endpoint)}", code="connect"
                ) from exc
            raise translate(exc) from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc) from exc
        with transport_errors():
            raise_for_status(response)
            raw = response.content
        try:
            body = json.loads(raw, parse_float=Decimal)
        except ValueError:
            raise RetryableError(
                f"response from {safe_url(self.endpoint)} is not JSON", code="bad_response"
            ) from None
        if not isinstance(body, dict):
            raise RetryableError(
                f"response from {safe_url(self.endpoint)} is not an object", code="bad_response"
            )
        self._observe_cost(document, body, reserved)
        errors = body.get("errors")
        data = body.get("data")
        if errors:
            error = self._error_for(errors, document)
            if allow_partial and isinstance(data, dict) and not isinstance(error, RetryableError | AuthError):
                logger.warning(
                    "partial GraphQL data accepted",
                    extra={"shop": self.shop_domain, "error": error.message, "error_code": error.code},
                )
                return data
            raise error
        if not isinstance(data, dict):
            raise PermanentError("GraphQL response has no data", code="graphql_no_data")
        return data

    def _observe_cost(self, document: str, body: Mapping[str, Any], reserved: float = 0.0) -> None:
        extensions = body.get("extensions")
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return
        self.last_cost = cost
        requested = _number(cost.get("requestedQueryCost"))
        if requested is not None:
            self._costs[document] = requested
        status = cost.get("throttleStatus")
        if not isinstance(status, dict):
            return
        maximum = _number(status.get("maximumAvailable"))
        available = _number(status.get("currentlyAvailable"))
        rate = _number(status.get("restoreRate"))
        if maximum is None or available is None or rate is None:
            return
        if self.ledger is not None:
            # Charged: the actual cost (a THROTTLED request costs nothing); the rest of the reservation returns,
            # and a request that cost more than was reserved (a first guess too low) takes the difference.
            charged = _number(cost.get("actualQueryCost"))
            self.ledger.report(reserved - (charged or 0.0), maximum, rate, available, reserved=reserved)
        now = self._clock()
        others = self._others_rate(maximum, available, rate, _number(cost.get("actualQueryCost")) or 0.0, now)
        share = max(rate - others, rate * MIN_SHARE) / rate if rate > 0 else 1.0
        # Of the points there, this client counts its share only, so clients do not all reach for the same ones.
        self.bucket = Bucket(maximum, available * share, rate, now, others)

    def _others_rate(self, maximum: float, available: float, rate: float, spent: float, now: float) -> float:
        """What other clients of the bucket spend a second: the refill that neither reached the bucket nor
        was spent by this client, measured over SHARE_WINDOW and smoothed; zero while the bucket is full."""
        previous = self.bucket.others_rate if self.bucket is not None else 0.0
        if self._reported is None:
            self._reported, self._spent_since = (now, available), 0.0
            return previous
        at, level = self._reported
        self._spent_since += spent
        elapsed = now - at
        if elapsed < SHARE_WINDOW:
            return previous
        refill = rate * elapsed
        sample = 0.0
        if level + refill < maximum:
            sample = max(0.0, (refill - self._spent_since - (available - level)) / elapsed)
        self._reported, self._spent_since = (now, available), 0.0
        others = (1 - SHARE_SMOOTHING) * previous + SHARE_SMOOTHING * sample
        return min(max(others, 0.0), rate * (1 - MIN_SHARE))

    def _error_for(self, errors: object, document: str) -> StorelinkError:
        items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        messages = "; ".join(str(e.get("message", "")) for e in items)[:500] or str(errors)[:500]
        codes = [
            str(e["extensions"].get("code"))
            for e in items
            if isinstance(e.get("extensions"), dict) and e["extensions"].get("code")
        ]
        details: dict[str, object] = {"errors": items[:5], "codes": codes}
        if "THROTTLED" in codes:
            return RetryableError(
                f"throttled by {self.shop_domain}: {messages}",
                retry_after=self._throttle_wait(document),
                code="throttled",
                details=details,
            )
        if "ACCESS_DENIED" in codes:
            return AuthError(
                f"access denied by {self.shop_domain}: {messages}", code="access_denied", details=details
            )
        if "INTERNAL_SERVER_ERROR" in codes:
            return RetryableError(f"store error: {messages}", code="graphql_internal", details=details)
        if "MAX_COST_EXCEEDED" in codes:
            return PermanentError(f"query too costly: {messages}", code="max_cost_exceeded", details=details)
        return PermanentError(f"GraphQL errors: {messages}", code="graphql_error", details=details)

    def _throttle_wait(self, document: str) -> float:
        cost = self._costs.get(document)
        if self.bucket is None or not cost:
            return DEFAULT_THROTTLE_WAIT
        return max(DEFAULT_THROTTLE_WAIT / 10, self.bucket.wait_for(cost, self._clock()))

    # -- mutations ----------------------------------------------------------------------------------------

    def mutate(
        self,
        document: str,
        variables: Mapping[str, Any],
        field: str,
        *,
        errors_key: str = "userErrors",
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """The payload of mutation `field`; its user errors raised as `ValidationError`/`PermanentError`."""
        data = self.execute(document, variables, repeatable=repeatable)
        payload = data.get(field)
        if not isinstance(payload, dict):
            raise PermanentError(f"{field} returned no payload", code="graphql_no_data")
        raise_user_errors(field, payload.get(errors_key))
        return payload

    # -- downloads ----------------------------------------------------------------------------------------

    def stream_lines(self, url: str) -> Iterator[bytes]:
        """The lines of a (bulk operation result) file, read as a stream; no shop token is sent with it."""
        response = self._get_stream(url)
        try:
            with transport_errors():
                for line in response.iter_lines(chunk_size=64 * 1024):
                    if line:
                        yield line
        finally:
            response.close()

    @retrying(attempts=3)
    def _get_stream(self, url: str) -> requests.Response:
        with transport_errors():
            response = self._session.get(url, stream=True, timeout=self._http.timeout)
        return raise_for_status(response)


def _refused(exc: requests.ConnectionError) -> bool:
    """True when no connection was made (so no request reached the store)."""
    reason: object = exc
    for _ in range(8):  # the cause chain of requests -> urllib3 -> socket is short
        if isinstance(reason, ConnectionRefusedError | urllib3.exceptions.NewConnectionError):
            return True
        if not isinstance(reason, BaseException):
            return False
        first = reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None
        reason = getattr(reason, "reason", None) or first or reason.__cause__ or reason.__context__
    return False


_RETRYABLE_USER_ERRORS: Final = frozenset(
    {
        "IDEMPOTENCY_CONCURRENT_REQUEST",
        "OPERATION_IN_PROGRESS",
        "LIMIT_REACHED",
        "CHANGE_FROM_QUANTITY_STALE",
        "COMPARE_QUANTITY_STALE",
    }
)
"""User errors that may not happen again: a request in flight, a bulk slot busy, stock read before a change
(read it again, then retry)."""


def raise_user_errors(operation: str, user_errors: object) -> None:
    """Raise the first of a payload's `userErrors`, or nothing when there are none."""
    if not isinstance(user_errors, Sequence) or isinstance(user_errors, str) or not user_errors:
        return
    errors = [e for e in user_errors if isinstance(e, dict)]
    if not errors:
        return
    first = errors[0]
    field_path = first.get("field")
    field = ".".join(str(part) for part in field_path) if isinstance(field_path, list) else None
    message = str(first.get("message") or "rejected")
    raw_code = first.get("code")
    code = str(raw_code).lower() if raw_code else f"{operation}_rejected"
    details: dict[str, object] = {
        "field": field,
        "message": message,
        "store_code": raw_code,
        "user_errors": errors[:10],
    }
    text = f"{operation}: {field + ': ' if field else ''}{message}"
    if raw_code in _RETRYABLE_USER_ERRORS:
        raise RetryableError(text, retry_after=DEFAULT_THROTTLE_WAIT, code=code, details=details)
    if field:
        raise ValidationError(text, code=code, details=details)
    raise PermanentError(text, code=code, details=details)
