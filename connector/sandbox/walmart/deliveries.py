"""Notifications the emulated seller account sends to its ACTIVE subscriptions.

Each event is POSTed as compact JSON ``{"source": {"eventType", "eventTime" (ISO-8601, ms, Z), "eventId"
(uuid)}, "payload": {...}}`` with ``Content-Type: application/json``, the subscription's custom `headers`, and
its `authDetails`:

- ``BASIC_AUTH``: header `authHeaderName` (default ``Authorization``) = ``Basic base64(userName:password)``
  (``basic_prefix=False`` sends the bare base64 value);
- ``HMAC``: header `authHeaderName` = HMAC-SHA256 of the raw body keyed with `authDetails.clientSecret`, or
  the seller's API client secret when the subscription names none; base64 by default (``hmac_encoding="hex"``
  for lowercase hex);
- ``OAUTH``: POST ``grant_type=client_credentials`` to `authUrl` with ``Authorization: Basic
  base64(clientId:clientSecret)``, then send `authHeaderName` = ``Bearer <access_token>``.

Payloads: PO_CREATED ``{"partnerId", "purchaseOrderId", "customerOrderId", "orderDate", "estimatedDeliveryDate",
"estimatedShipDate" (ISO), "orderLines": [{"lineNumber", "sku", "productName", "quantity": {"unitOfMeasure":
"EACH", "measurementValue": "1"}, "status": "CREATED", "statusDate", "shippingProgramType", "shippingMethod",
"shipNodeType"}]}``; INVENTORY_OOS ``{"partnerId", "itemId", "sku", "productName", "category", "shipNodes":
[{"availToSellQty", "shipNode", "shipNodeName"}]}``; OFFER_PUBLISHED / OFFER_UNPUBLISHED ``{"partnerId",
"itemId", "sku", "itemName", "publishStatus", "lifecycleStatus"[, "statusChangeReasons"]}``;
ORDER_STATUS_UPDATE / ORDER_SHIPMENT_UPDATE (MCS) ``{"partnerId", "originSystemOrderId" (the sellerOrderId),
"orderChannelId", "status", "lineItemStatus": [{"sellerLineId", "itemDetail": {"sku"}, "itemStatus": [{"qty":
{"unitOfMeasure", "measurementValue"}, "status": Created|Acknowledged|Shipped|Canceled|Rejected}]}],
"shipmentDetails": [{"status", "purchaseOrderId", "scac", "trackingNo", "externalTrackingURL", ...}]}``.

A delivery that does not get a 2xx is retried twice more (three attempts, as Walmart documents). Faults can
duplicate (same eventId twice), reorder (hold until the next one is sent), delay or drop a delivery."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests

from connector.sandbox.walmart.store import Store, Subscription, iso_ms

logger = logging.getLogger(__name__)


def sign(secret: str, body: bytes, *, encoding: str = "base64") -> str:
    """The HMAC header value of `body`: HMAC-SHA256 keyed with `secret`, base64 (or hex) encoded."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256)
    return digest.hexdigest() if encoding == "hex" else base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True, slots=True)
class WebhookFault:
    """How to deliver one event: twice with the same eventId, after the next one, later, or never."""

    duplicate: bool = False
    reorder: bool = False
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST (or a dropped delivery: status None, error 'dropped')."""

    event_id: str
    event_type: str
    subscription_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None
    error: str | None
    at: float


@dataclass
class _Outgoing:
    event_id: str
    event_type: str
    subscription: Subscription
    body: bytes
    attempt: int = 0


@dataclass(order=True)
class _Scheduled:
    due: float
    sequence: int
    outgoing: _Outgoing = field(compare=False)


class WebhookSender:
    """Turns store events into deliveries, sent from one background thread."""

    def __init__(
        self,
        store: Store,
        *,
        client_secret: Callable[[], str],
        timeout: float = 5.0,
        retry_delays: Sequence[float] = (0.5, 1.0),
        hmac_encoding: str = "base64",
        basic_prefix: bool = True,
    ):
        self.store = store
        self._client_secret = client_secret
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays)
        self.hmac_encoding = hmac_encoding
        self.basic_prefix = basic_prefix
        self._lock = threading.Condition()
        self._queue: list[_Scheduled] = []
        self._held: list[_Outgoing] = []
        self._sequence = itertools.count()
        self._attempts: list[Attempt] = []
        self._busy = 0
        self._plan: list[WebhookFault] = []
        self._default = WebhookFault()
        self._random: tuple[float, random.Random, tuple[WebhookFault, ...]] | None = None
        self._session = requests.Session()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="walmart-webhooks", daemon=True)
        self._thread.start()
        store.listeners.append(self.dispatch)

    # --- configuration -----------------------------------------------------------------------------------

    def plan(self, *faults: WebhookFault) -> None:
        """Apply these faults to the next deliveries (one each), then the default."""
        with self._lock:
            self._plan = list(faults)

    def set_default(self, fault: WebhookFault) -> None:
        with self._lock:
            self._default = fault

    def set_random(self, probability: float, faults: Sequence[WebhookFault], *, seed: int = 0) -> None:
        with self._lock:
            self._random = (probability, random.Random(seed), tuple(faults)) if faults else None

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def clear(self) -> None:
        with self._lock:
            self._attempts.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Release held (reordered) deliveries and wait until nothing is queued or in flight."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._release_held()
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
            return True

    def close(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        self._thread.join(timeout=5)
        self._session.close()
        if self.dispatch in self.store.listeners:
            self.store.listeners.remove(self.dispatch)

    # --- producing ---------------------------------------------------------------------------------------

    def dispatch(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue one delivery per ACTIVE subscription to `event_type` (all share one eventId)."""
        subscriptions = self.store.subscribers(event_type)
        if not subscriptions:
            return
        event_id = str(uuid.uuid4())
        body = orjson.dumps(
            {
                "source": {"eventType": event_type, "eventTime": iso_ms(time.time()), "eventId": event_id},
                "payload": payload,
            }
        )
        for subscription in subscriptions:
            self._enqueue(_Outgoing(event_id, event_type, subscription, body))

    def send_test(self, subscription: Subscription, event_type: str | None = None) -> int | None:
        """Deliver one sample event synchronously (`POST /v3/webhooks/test`); the receiver's status or None."""
        kind = event_type or subscription.event_type
        body = orjson.dumps(
            {
                "source": {"eventType": kind, "eventTime": iso_ms(time.time()), "eventId": str(uuid.uuid4())},
                "payload": {"partnerId": self.store.partner_id, "test": True},
            }
        )
        outgoing = _Outgoing(str(uuid.uuid4()), kind, subscription, body, attempt=len(self.retry_delays))
        return self._send(outgoing)

    def headers(self, subscription: Subscription, body: bytes) -> dict[str, str]:
        """The headers of one delivery of `body` to `subscription`."""
        headers = {"Content-Type": "application/json", **subscription.headers}
        auth = subscription.auth_details
        method = str(auth.get("authMethod", "")).upper()
        name = str(auth.get("authHeaderName") or "Authorization")
        if method == "BASIC_AUTH":
            value = base64.b64encode(
                f"{auth.get('userName', '')}:{auth.get('password', '')}".encode()
            ).decode()
            headers[name] = f"Basic {value}" if self.basic_prefix else value
        elif method == "HMAC":
            secret = str(auth.get("clientSecret") or self._client_secret())
            headers[name] = sign(secret, body, encoding=self.hmac_encoding)
        elif method == "OAUTH":
            token = self._oauth_token(auth)
            if token:
                headers[name] = f"Bearer {token}"
        return headers

    def _oauth_token(self, auth: dict[str, Any]) -> str | None:
        url = auth.get("authUrl")
        if not isinstance(url, str):
            return None
        credentials = base64.b64encode(
            f"{auth.get('clientId', '')}:{auth.get('clientSecret', '')}".encode()
        ).decode()
        try:
            response = self._session.post(
                url,
                data={"grant_type": "client_credentials"},
                headers={str(auth.get("authHeaderName") or "Authorization"): f"Basic {credentials}"},
                timeout=self.timeout,
            )
            token = response.json().get("access_token") if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None
        return token if isinstance(token, str) else None

    def _next_fault(self) -> WebhookFault:
        if self._plan:
            return self._plan.pop(0)
        if self._random is not None:
            probability, rng, faults = self._random
            if rng.random() < probability:
                return rng.choice(faults)
        return self._default

    def _enqueue(self, outgoing: _Outgoing) -> None:
        with self._lock:
            fault = self._next_fault()
            if fault.drop:
                self._record(outgoing, {}, None, "dropped")
                return
            if fault.reorder:
                self._held.append(outgoing)
                return
            due = time.monotonic() + fault.delay
            self._schedule(outgoing, due)
            if fault.duplicate:
                self._schedule(
                    _Outgoing(outgoing.event_id, outgoing.event_type, outgoing.subscription, outgoing.body),
                    due,
                )
            self._release_held()

    def _schedule(self, outgoing: _Outgoing, due: float) -> None:
        heapq.heappush(self._queue, _Scheduled(due, next(self._sequence), outgoing))
        self._lock.notify_all()

    def _release_held(self) -> None:
        """Held deliveries go out right after whatever was scheduled before them."""
        for outgoing in self._held:
            self._schedule(outgoing, time.monotonic() + 0.01)
        self._held.clear()

    def _record(
        self, outgoing: _Outgoing, headers: dict[str, str], status: int | None, error: str | None
    ) -> None:
        self._attempts.append(
            Attempt(
                outgoing.event_id,
                outgoing.event_type,
                outgoing.subscription.subscription_id,
                outgoing.subscription.event_url,
                outgoing.body,
                headers,
                status,
                error,
                time.time(),
            )
        )

    # --- sending -----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and (not self._queue or self._queue[0].due > time.monotonic()):
                    wait = (self._queue[0].due - time.monotonic()) if self._queue else 0.5
                    self._lock.wait(max(0.001, min(wait, 0.5)))
                if self._stopped:
                    return
                outgoing = heapq.heappop(self._queue).outgoing
                self._busy += 1
            try:
                self._send(outgoing)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _send(self, outgoing: _Outgoing) -> int | None:
        status: int | None = None
        error: str | None = None
        headers = self.headers(outgoing.subscription, outgoing.body)
        try:
            response = self._session.post(
                outgoing.subscription.event_url, data=outgoing.body, headers=headers, timeout=self.timeout
            )
            status = response.status_code
        except requests.RequestException as failure:
            error = type(failure).__name__
        with self._lock:
            self._record(outgoing, headers, status, error)
            if (status is None or not 200 <= status < 300) and outgoing.attempt < len(self.retry_delays):
                delay = self.retry_delays[outgoing.attempt]
                outgoing.attempt += 1
                self._schedule(outgoing, time.monotonic() + delay)
        logger.debug(
            "walmart notification delivered",
            extra={
                "event_type": outgoing.event_type,
                "event_id": outgoing.event_id,
                "status": status,
                "error": error,
            },
        )
        return status
