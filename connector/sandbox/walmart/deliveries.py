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
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from connector.sandbox import webhook_sender
from connector.sandbox.walmart.store import Store, Subscription, iso_ms
from connector.sandbox.webhook_sender import Outgoing, WebhookFault

__all__ = ["Attempt", "WebhookFault", "WebhookSender", "sign"]

logger = logging.getLogger(__name__)


def sign(secret: str, body: bytes, *, encoding: str = "base64") -> str:
    """The HMAC header value of `body`: HMAC-SHA256 keyed with `secret`, base64 (or hex) encoded."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256)
    return digest.hexdigest() if encoding == "hex" else base64.b64encode(digest.digest()).decode()


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
class _Outgoing(Outgoing):
    event_id: str
    event_type: str
    subscription: Subscription


class WebhookSender(webhook_sender.WebhookSender[_Outgoing, Attempt]):
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
        self.hmac_encoding = hmac_encoding
        self.basic_prefix = basic_prefix
        super().__init__(timeout=timeout, retry_delays=retry_delays, thread_name="walmart-webhooks")
        store.listeners.append(self.dispatch)

    def close(self) -> None:
        super().close()
        if self.dispatch in self.store.listeners:
            self.store.listeners.remove(self.dispatch)

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
            self._enqueue(_Outgoing(event_id, event_type, subscription, body=body))

    def send_test(self, subscription: Subscription, event_type: str | None = None) -> int | None:
        """Deliver one sample event synchronously (`POST /v3/webhooks/test`); the receiver's status or None."""
        kind = event_type or subscription.event_type
        body = orjson.dumps(
            {
                "source": {"eventType": kind, "eventTime": iso_ms(time.time()), "eventId": str(uuid.uuid4())},
                "payload": {"partnerId": self.store.partner_id, "test": True},
            }
        )
        outgoing = _Outgoing(str(uuid.uuid4()), kind, subscription, body=body, attempt=len(self.retry_delays))
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

    def _request(self, outgoing: _Outgoing) -> tuple[str, dict[str, str]]:
        return outgoing.subscription.event_url, self.headers(outgoing.subscription, outgoing.body)

    def _attempt(
        self, outgoing: _Outgoing, headers: dict[str, str] | None, status: int | None, error: str | None
    ) -> Attempt:
        return Attempt(
            outgoing.event_id,
            outgoing.event_type,
            outgoing.subscription.subscription_id,
            outgoing.subscription.event_url,
            outgoing.body,
            {} if headers is None else headers,
            status,
            error,
            time.time(),
        )

    def _delivered(self, outgoing: _Outgoing, status: int | None, error: str | None) -> None:
        logger.debug(
            "walmart notification delivered",
            extra={
                "event_type": outgoing.event_type,
                "event_id": outgoing.event_id,
                "status": status,
                "error": error,
            },
        )
