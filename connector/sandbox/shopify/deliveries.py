"""Webhook deliveries the emulated shop sends: Shopify's headers (topic, base64 HMAC-SHA256 of the raw body
keyed with the app's client secret, shop domain, API version, webhook and event ids, triggered-at), compact
JSON bodies, retries with the same webhook id, and injected faults (duplicate, reorder, delay, drop)."""

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
from datetime import datetime
from typing import Any

import orjson
import requests

from connector.sandbox.shopify.store import Store

logger = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """The X-Shopify-Hmac-Sha256 value of `body`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class WebhookFault:
    """How to deliver one webhook: twice with the same id, after the next one, later, or never."""

    duplicate: bool = False
    reorder: bool = False
    delay: float = 0.0
    drop: bool = False


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


@dataclass(order=True)
class _Scheduled:
    due: float
    sequence: int
    outgoing: _Outgoing = field(compare=False)


@dataclass
class _Outgoing:
    webhook_id: str
    event_id: str
    topic: str
    uri: str
    body: bytes
    headers: dict[str, str]
    attempt: int = 0


class WebhookSender:
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
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays)
        self.app_subscriptions: list[tuple[str, str]] = []
        self._lock = threading.Condition()
        self._queue: list[_Scheduled] = []
        self._held: list[_Outgoing] = []
        self._sequence = itertools.count()
        self._attempts: list[Attempt] = []
        self._busy = 0
        self._plan: list[WebhookFault] = []
        self._default = WebhookFault()
        self._random: tuple[float, random.Random, Sequence[WebhookFault]] | None = None
        self._session = requests.Session()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="shopify-webhooks", daemon=True)
        self._thread.start()
        store.listeners.append(self.dispatch)

    # --- configuration -----------------------------------------------------------------------------------

    def subscribe(self, topic: str, uri: str) -> None:
        """An app-level subscription (as declared in shopify.app.toml): `topic` like 'orders/create'."""
        with self._lock:
            self.app_subscriptions.append((topic, uri))

    def plan(self, *faults: WebhookFault) -> None:
        """Apply these faults to the next deliveries (one each), then the default."""
        with self._lock:
            self._plan = list(faults)

    def set_default(self, fault: WebhookFault) -> None:
        with self._lock:
            self._default = fault

    def set_random(self, probability: float, faults: Sequence[WebhookFault], *, seed: int = 0) -> None:
        """Give each delivery one of `faults` with `probability`, drawn from a seeded generator."""
        with self._lock:
            self._random = (probability, random.Random(seed), tuple(faults))

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
            self._enqueue(_Outgoing(webhook_id, event_id, topic, uri, raw, headers))

    def _next_fault(self) -> WebhookFault:
        if self._plan:
            return self._plan.pop(0)
        if self._random is not None:
            probability, rng, faults = self._random
            if faults and rng.random() < probability:
                return rng.choice(list(faults))
        return self._default

    def _enqueue(self, outgoing: _Outgoing) -> None:
        with self._lock:
            fault = self._next_fault()
            if fault.drop:
                self._record(outgoing, None, "dropped")
                return
            if fault.reorder:
                self._held.append(outgoing)
                return
            due = time.monotonic() + fault.delay
            self._schedule(outgoing, due)
            if fault.duplicate:
                self._schedule(_Outgoing(**{**outgoing.__dict__, "attempt": 0}), due)
            self._release_held()

    def _schedule(self, outgoing: _Outgoing, due: float) -> None:
        heapq.heappush(self._queue, _Scheduled(due, next(self._sequence), outgoing))
        self._lock.notify_all()

    def _release_held(self) -> None:
        """Held deliveries go out right after whatever was scheduled before them."""
        for outgoing in self._held:
            self._schedule(outgoing, time.monotonic() + 0.01)
        self._held.clear()

    def _record(self, outgoing: _Outgoing, status: int | None, error: str | None) -> None:
        self._attempts.append(
            Attempt(
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

    def _send(self, outgoing: _Outgoing) -> None:
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(
                outgoing.uri, data=outgoing.body, headers=outgoing.headers, timeout=self.timeout
            )
            status = response.status_code
        except requests.RequestException as failure:
            error = type(failure).__name__
        with self._lock:
            self._record(outgoing, status, error)
            if (status is None or not 200 <= status < 300) and outgoing.attempt < len(self.retry_delays):
                delay = self.retry_delays[outgoing.attempt]
                outgoing.attempt += 1
                self._schedule(outgoing, time.monotonic() + delay)
        logger.debug("webhook delivered", extra={"topic": outgoing.topic, "status": status, "error": error})
