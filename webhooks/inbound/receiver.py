"""The store webhook receiver: `/webhooks/<source>` and `/webhooks/<source>/<merchant id>`.

The raw body is read before anything parses it, the merchant's adapter verifies it (401 and nothing stored
when it fails), its envelope gives the delivery id, topic and store time (400 when malformed, logged as
rejected, nothing stored), the delivery is stored once per merchant (a repeat is acknowledged as a
duplicate) and the drain job of the merchant's shard is woken. A failure to wake the job does not fail the
request, because the delivery is already stored and the sweeper wakes its merchant.

The answer is fast: processing happens in `webhooks.inbound.drain`, and `Receiver` answers a delivery ahead
of Flask (`handle`, as the routes do, without Flask's request context, routing and hooks).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import EnvironHeaders

from connector.domain import registry
from connector.domain.errors import PermanentError
from connector.domain.ports import Capability, NamesWebhookTopic, StoreAdapter
from connector.infra.logs import EveryInterval
from connector.infra.metrics import INBOUND_REJECTED
from connector.infra.models import Merchant
from connector.infra.runtime import Runtime
from connector.infra.store_adapters import build_adapter
from connector.merchants import installs
from connector.web.context import ROUTE, quiet_access_log, sized_body
from connector.web.problems import error_answer, problem
from webhooks.inbound import intake, scheduling

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

bp = Blueprint("inbound_webhooks", __name__)

CACHE_SECONDS: Final = 5.0
"""How long a process reuses a merchant's adapter (and so its webhook secret) between lookups."""
ROUTES: Final = ("/webhooks/<source>", "/webhooks/<source>/<int:merchant_id>")
PAGE: Final = 256
"""Merchants addressed by id are read by pages of this many ids: a flood spread over a thousand merchants
costs a web process a few reads, not one per merchant (each adapter is still built on first use)."""


@dataclass(frozen=True, slots=True)
class _Target:
    merchant_id: int
    adapter: StoreAdapter
    expires: float


@dataclass(frozen=True, slots=True)
class _Page:
    rows: dict[int, Merchant]
    expires: float


class _Merchants:
    """Per-process cache of (source, merchant address) -> adapter, so a burst costs one lookup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int | None, str | None], _Target | None] = {}
        self._pages: dict[tuple[str, int], _Page] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._pages.clear()

    def get(self, rt: Runtime, source: str, merchant_id: int | None, store_ref: str | None) -> _Target | None:
        key = (source, merchant_id, store_ref)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            return entry
        merchant = None
        if merchant_id is not None:
            merchant = self._page(rt, source, merchant_id, now).rows.get(merchant_id)
        if merchant is None:  # not addressed by id, or created since its page was read
            merchant = self._lookup(rt, source, merchant_id, store_ref)
        if merchant is None:
            return None
        target = _Target(merchant.id, build_adapter(merchant, rt.secrets, rt.settings), now + CACHE_SECONDS)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = target
        return target

    def _page(self, rt: Runtime, source: str, merchant_id: int, now: float) -> _Page:
        """The merchants of `source` whose ids share `merchant_id`'s page, read in one statement at most
        every CACHE_SECONDS."""
        first = merchant_id - merchant_id % PAGE
        with self._lock:
            page = self._pages.get((source, first))
        if page is not None and page.expires > now:
            return page
        with Session(rt.db.autocommit_engine, expire_on_commit=False) as session:
            rows = session.scalars(
                select(Merchant).where(
                    Merchant.kind == source, Merchant.id >= first, Merchant.id < first + PAGE
                )
            )
            page = _Page({m.id: m for m in rows}, now + CACHE_SECONDS)
        with self._lock:
            if len(self._pages) > 1_000:
                self._pages.clear()
            self._pages[(source, first)] = page
        return page

    @staticmethod
    def _lookup(rt: Runtime, source: str, merchant_id: int | None, store_ref: str | None) -> Merchant | None:
        """One merchant, in one statement on the autocommit engine (one round trip)."""
        query = select(Merchant).where(Merchant.kind == source)
        if merchant_id is not None:
            query = query.where(Merchant.id == merchant_id)
        else:
            query = query.where(Merchant.store_ref == store_ref)
        with Session(rt.db.autocommit_engine, expire_on_commit=False) as session:
            return session.scalars(query).first()


merchants = _Merchants()


def _answer(body: dict[str, object]) -> Response:
    return Response(orjson.dumps(body), status=200, mimetype="application/json")


def _lowered(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


@bp.post(ROUTES[0])
@bp.post(ROUTES[1])
def receive(source: str, merchant_id: int | None = None) -> Response:
    rt: Runtime = current_app.extensions["storelink"]
    raw_body = request.get_data(cache=False)  # the bytes as sent: signatures are over these
    return handle(rt, request.environ, source, merchant_id, _lowered(request.headers.items()), raw_body)


def handle(
    rt: Runtime,
    environ: WSGIEnvironment,
    source: str,
    merchant_id: int | None,
    headers: dict[str, str],
    raw_body: bytes,
) -> Response:
    """A delivery's answer, whether Flask routed it (`receive`) or `Receiver` answered it ahead of Flask:
    `headers` lower-cased, `raw_body` as sent."""
    adapter_cls = registry.adapters().get(source)
    if adapter_cls is None or Capability.WEBHOOKS not in adapter_cls.capabilities:
        return problem(404, "unknown_source", f"no store kind {source!r} receives webhooks here")
    store_ref = None if merchant_id is not None else adapter_cls.webhook_store_ref(headers)
    if merchant_id is None and not store_ref:
        return problem(
            400,
            "no_store",
            f"{source} deliveries name their store in the URL: /webhooks/{source}/<merchant id>",
        )
    target = merchants.get(rt, source, merchant_id, store_ref)
    if target is None:
        if store_ref and _signed_by_app(rt, source, headers, raw_body):
            # A store with no merchant here: there is nothing of it to change, but the store (an app's
            # compliance topics above all) must hear that the authentic delivery arrived.
            logger.info(
                "inbound delivery for a store with no merchant acknowledged",
                extra={"source": source, "store_ref": store_ref, "topic": _header_topic(source, headers)},
            )
            quiet_access_log(environ)
            return _answer({"status": "no_merchant"})
        # Unknown and unverifiable look the same from outside: nothing is stored either way.
        return problem(401, "unknown_store", "the delivery does not come from a connected store")
    if not target.adapter.verify_webhook(headers, raw_body):
        logger.warning(
            "inbound signature rejected", extra={"source": source, "merchant_id": target.merchant_id}
        )
        INBOUND_REJECTED.labels(source, "bad_signature").inc()
        return problem(401, "bad_signature", "the delivery's signature does not verify")
    try:
        envelope = target.adapter.webhook_envelope(headers, raw_body)
    except PermanentError as exc:
        logger.warning(
            "inbound delivery rejected",
            extra={
                "source": source,
                "merchant_id": target.merchant_id,
                "code": exc.code,
                "error": exc.message[:200],
            },
        )
        INBOUND_REJECTED.labels(source, exc.code).inc()
        return problem(400, exc.code, exc.message)
    event_id = intake.store(
        rt.db,
        source=source,
        merchant_id=target.merchant_id,
        envelope=envelope,
        headers=headers,
        raw_body=raw_body,
    )
    log = {"source": source, "merchant_id": target.merchant_id, "delivery_id": envelope.delivery_id}
    quiet_access_log(environ)  # stored (or already stored): the InboundEvent row is the record
    if event_id is None:
        logger.info("inbound duplicate acknowledged", extra=log)
        return _answer({"status": "duplicate", "delivery_id": envelope.delivery_id})
    try:
        scheduling.wake(rt.redis, target.merchant_id, ttl=rt.settings.worker_lock_seconds)
    except Exception as exc:  # stored: the sweeper wakes the merchant (once Redis is back)
        _log_wake_failure(exc, log)
    logger.debug("inbound accepted", extra={**log, "topic": envelope.topic})
    return _answer({"status": "accepted", "delivery_id": envelope.delivery_id, "id": event_id})


_wake_log = EveryInterval(60.0)


def _log_wake_failure(exc: Exception, log: dict[str, object]) -> None:
    """While Redis is away every delivery fails to wake its drain: say so once a minute, not per delivery."""
    if _wake_log.due():
        logger.warning(
            "deliveries stored but their drain not woken; the sweep wakes it later",
            extra={**log, "error": type(exc).__name__},
        )


def _signed_by_app(rt: Runtime, source: str, headers: dict[str, str], raw_body: bytes) -> bool:
    """Whether the delivery carries the signature of the store kind's installed app (when it has one)."""
    try:
        cls = installs.installable(source)
        app = installs.app_for(rt.settings, source)
    except installs.InstallError:
        return False
    return cls.verify_app_webhook(app, headers, raw_body)


def _header_topic(source: str, headers: dict[str, str]) -> str | None:
    """The topic a delivery names in its headers, when the store kind's adapter reads one there."""
    cls = registry.adapters().get(source)
    return cls.webhook_topic(headers) if isinstance(cls, NamesWebhookTopic) else None


_PATH: Final = re.compile(r"/webhooks/([a-z][a-z0-9_]{0,31})(?:/([1-9][0-9]{0,17}))?")
"""The receiver's paths as `Receiver` takes them (a store kind's name, a merchant id without leading zeros);
any other spelling goes to the Flask routes, which answer it as they always have."""


class Receiver:
    """WSGI middleware: a delivery to `/webhooks/<source>[/<merchant id>]` with a `Content-Length` is answered
    by `handle` ahead of Flask (no request context, routing or hooks: a store's burst is thousands of these);
    everything else goes on to the Flask app."""

    def __init__(self, app: WSGIApplication, flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        found = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        raw_body = (
            sized_body(environ) if found is not None and environ.get("REQUEST_METHOD") == "POST" else None
        )
        if found is None or raw_body is None:
            return self.app(environ, start_response)
        source, merchant = found.groups()
        headers = _lowered(EnvironHeaders(environ).items())
        try:
            rt: Runtime = self.flask_app.extensions["storelink"]
            response = handle(rt, environ, source, int(merchant) if merchant else None, headers, raw_body)
        except Exception as exc:  # the app's error handlers answer it, as they answer the route's failures
            response = error_answer(self.flask_app, environ, exc)
        environ[ROUTE] = ROUTES[1] if merchant else ROUTES[0]
        return response(environ, start_response)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.wsgi_app = Receiver(app.wsgi_app, app)  # type: ignore[method-assign]
