"""Live purchases ahead of Flask: `POST /v1/orders` for a live session, answered by WSGI middleware.

A flash sale sends thousands of purchase attempts a second, almost all refused in Redis (sold out, over the
buyer's limit) without touching the database; Flask's request context, routing, hooks and error handlers
then cost as much as the purchase itself. `LivePurchases` answers such a request itself when it can do
exactly what the `create_order` route does: the API key is one the process has cached (its generation is
confirmed by the purchase's own Lua call), the `Idempotency-Key` is well formed, and the body is JSON that
validates as `OrderCreate` with a `live_session_id`. It answers the order (201, or the first answer again)
and the checkout's refusals (409, 422, 404) as the route would. Anything else goes on to the Flask route,
untouched: another request, a body or key the route must refuse, a key not cached, a key changed since it
was cached. A checkout that fails otherwise (the database down, say) is answered by the app's own error
handlers, as the route's failure would be.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from flask import Flask
from pydantic import ValidationError
from werkzeug.wrappers import Response

from connector.api import orders
from connector.api.common import KeyCache, key_cache
from connector.domain.errors import RefusedError
from connector.infra.runtime import Runtime
from connector.merchants import clients
from connector.orders import checkout
from connector.stock import counters
from connector.web import context
from connector.web.problems import error_answer, problem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

PATH: Final = "/v1/orders"
"""The path this middleware answers, which is also the route's rule (as the metrics name it)."""
_JSON_TYPES: Final = frozenset({"application/json"})


@dataclass(frozen=True, slots=True)
class _Purchase:
    """A request the middleware can answer: its client's cached key check, idempotency key and body."""

    client_id: int
    check: counters.KeyCheck
    key: str
    body: orders.OrderCreate


def _cached_client(environ: WSGIEnvironment, cache: KeyCache) -> tuple[int, counters.KeyCheck] | None:
    scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not clients.looks_like_key(key):
        return None
    generation, client = cache.peek(clients.hash_key(key))
    if client is None:
        return None
    return client.id, counters.KeyCheck(clients.KEY_GENERATION, generation)


def _body(environ: WSGIEnvironment) -> orders.OrderCreate | None:
    """The validated live purchase body, or None (the route answers); the body stays readable for it."""
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    raw = context.sized_body(environ) if mimetype in _JSON_TYPES else None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        body = orders.OrderCreate.model_validate(data) if isinstance(data, dict) else None
    except (ValueError, RecursionError, ValidationError):  # pydantic's ValidationError is a ValueError too
        return None
    if body is None or body.live_session_id is None:
        return None
    return body


class LivePurchases:
    """WSGI middleware: answers a live purchase `POST /v1/orders` itself when it can answer exactly as the
    route would; everything else goes on to the Flask app."""

    def __init__(self, app: WSGIApplication, flask_app: Flask, rt: Runtime) -> None:
        self.app = app
        self.flask_app = flask_app
        self.rt = rt

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        purchase = self._purchase(environ)
        if purchase is None:
            return self.app(environ, start_response)
        response: Response | None
        try:
            response = self._answer(environ, purchase)
        except Exception as exc:
            # Before the purchase script confirmed the cached key (a session or pin not found, say) nothing was
            # bought: the route answers, checking the key first. After it, a refusal is answered here and any
            # other failure (the database down, say) by the app's error handlers, as the route's would be.
            response = self._failure(environ, exc) if purchase.check.confirmed else None
        if response is None:  # the body is still unread for the route (`context.sized_body`)
            return self.app(environ, start_response)
        environ[context.ROUTE] = PATH
        return response(environ, start_response)

    def _purchase(self, environ: WSGIEnvironment) -> _Purchase | None:
        cached = _cached_client(environ, key_cache(self.flask_app))
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        if cached is None or key is None or not orders.IDEMPOTENCY_KEY.fullmatch(key):
            return None
        body = _body(environ)
        if body is None:
            return None
        return _Purchase(cached[0], cached[1], key, body)

    def _answer(self, environ: WSGIEnvironment, purchase: _Purchase) -> Response:
        """The route's answer to a purchase: the order (201, or the first answer again) and where it lives."""
        order_request, digest = orders.order_request_of(self.rt, purchase.body)
        answer = checkout.create_order(
            self.rt, purchase.client_id, purchase.key, order_request, digest, purchase.check
        )
        location = environ.get("SCRIPT_NAME", "") + f"{PATH}/{answer.body['id']}"
        return orders.answer_response(answer, location)

    def _failure(self, environ: WSGIEnvironment, exc: Exception) -> Response:
        """A checkout refusal's problem document, as the route's; any other failure, the error handlers'."""
        if not isinstance(exc, RefusedError):
            return error_answer(self.flask_app, environ, exc)
        if exc.code in orders.STOCK_REFUSALS:
            context.quiet_access_log(environ)
        return problem(exc.status, exc.code, exc.message, **exc.extra)


def install(app: Flask) -> None:
    """Put `LivePurchases` in front of the app's WSGI callable."""
    app.wsgi_app = LivePurchases(app.wsgi_app, app, app.extensions["storelink"])  # type: ignore[method-assign]
