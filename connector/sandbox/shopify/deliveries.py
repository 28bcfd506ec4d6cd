"""Webhook deliveries the emulated shop sends: Shopify's headers (topic, base64 HMAC-SHA256 of the raw body
keyed with the app's client secret, shop domain, API version, webhook and event ids, triggered-at), compact
JSON bodies, retries with the same webhook id, and injected faults (duplicate, reorder, delay, drop)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from connector.sandbox import webhook_sender
from connector.sandbox.shopify.store import Store
from connector.sandbox.webhook_sender import Outgoing, WebhookFault

__all__ = ["Attempt", "WebhookFault", "WebhookSender", "sign"]

logger = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """The X-Shopify-Hmac-Sha256 value of `body`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST (or a dropped one: status None, error 'dropped')."""

    webhook_id: str
    event_id: str
    topic: str
    uri: str
    body: bytes
    headers: dict[str, str]
    status: int | None
    error: str | None
    at: float


@dataclass
class _Outgoing(Outgoing):
    webhook_id: str
    event_id: str
    topic: str
    uri: str
    headers: dict[str, str]


class WebhookSender(webhook_sender.WebhookSender[_Outgoing, Attempt]):
    """Turns store changes into deliveries to the shop's subscriptions and app-level ones, from one thread."""

    def __init__(
        self,
        store: Store,
        *,
        secret: Callable[[], str],
        api_version: str,
        timeout: float = 5.0,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0),
    ):
        self.store = store
        self._secret = secret
        self.api_version = api_version
        self.app_subscriptions: list[tuple[str, str]] = []
        super().__init__(timeout=timeout, retry_delays=retry_delays, thread_name="shopify-webhooks")
        store.listeners.append(self.dispatch)

    def subscribe(self, topic: str, uri: str) -> None:
        """An app-level subscription (as declared in shopify.app.toml): `topic` like 'orders/create'."""
        with self._lock:
            self.app_subscriptions.append((topic, uri))

    def close(self) -> None:
        super().close()
        if self.dispatch in self.store.listeners:
            self.store.listeners.remove(self.dispatch)

    def dispatch(self, topic: str, body: dict[str, Any], triggered: datetime) -> None:
        """Queue one delivery per subscription to `topic` (all share one event id)."""
        uris = [s.uri for s in self.store.subscribers(topic, body)]
        with self._lock:
            uris += [uri for wanted, uri in self.app_subscriptions if wanted == topic]
        if not uris:
            return
        raw = orjson.dumps(body)
        event_id = str(uuid.uuid4())
        stamp = triggered.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        secret = self._secret()
        for uri in uris:
            webhook_id = str(uuid.uuid4())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Shopify-Captain-Hook",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign(secret, raw),
                "X-Shopify-Shop-Domain": self.store.shop.myshopify_domain,
                "X-Shopify-API-Version": self.api_version,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": stamp,
            }
            self._enqueue(_Outgoing(webhook_id, event_id, topic, uri, headers, body=raw))

    def _request(self, outgoing: _Outgoing) -> tuple[str, dict[str, str]]:
        return outgoing.uri, outgoing.headers

    def _attempt(
        self, outgoing: _Outgoing, headers: dict[str, str] | None, status: int | None, error: str | None
    ) -> Attempt:
        return Attempt(
            outgoing.webhook_id,
            outgoing.event_id,
            outgoing.topic,
            outgoing.uri,
            outgoing.body,
            dict(outgoing.headers),
            status,
            error,
            time.time(),
        )

    def _delivered(self, outgoing: _Outgoing, status: int | None, error: str | None) -> None:
        logger.debug("webhook delivered", extra={"topic": outgoing.topic, "status": status, "error": error})
