"""The Shopify emulator's WSGI application (Admin GraphQL endpoint, OAuth, bulk result files) and `serve()`,
which runs it on 127.0.0.1 in a background thread for tests, the demo and benchmarks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from flask import Flask, Response, redirect, request

from connector.sandbox import control
from connector.sandbox.serving import SOCKET, KeepAliveServer
from connector.sandbox.shopify import control as shop_control
from connector.sandbox.shopify.api import GraphQLEndpoint
from connector.sandbox.shopify.bulk import BulkRunner
from connector.sandbox.shopify.cost import LeakyBucket
from connector.sandbox.shopify.deliveries import WebhookSender
from connector.sandbox.shopify.faults import ApiFault, FaultPlan
from connector.sandbox.shopify.oauth import INVALID_TOKEN, App, OAuth
from connector.sandbox.shopify.schema import API_VERSION
from connector.sandbox.shopify.store import Store

logger = logging.getLogger(__name__)

GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status=status, mimetype="application/json")


class ShopifyEmulator:
    """One emulated shop with one installed app: its state, token checks, cost bucket, faults and webhooks."""

    def __init__(
        self,
        *,
        app: App | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        maximum_available: float = 2000.0,
        restore_rate: float = 100.0,
        access_tokens: tuple[str, ...] = ("shpat_sandbox",),
        bulk_step_delay: float = 0.05,
        webhook_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0),
    ):
        self.clock = clock
        self.store = store or Store(clock=clock)
        self.client = app or App()
        self.base_url = "http://127.0.0.1"
        self.oauth = OAuth(self.client, self.store.shop.myshopify_domain, clock)
        for token in access_tokens:
            self.oauth.add_access_token(token)
        self.bucket = LeakyBucket(maximum_available, restore_rate, clock=clock)
        self.faults = FaultPlan()
        self.webhooks = WebhookSender(
            self.store,
            secret=lambda: self.client.client_secret,
            api_version=API_VERSION,
            retry_delays=webhook_retry_delays,
        )
        self.bulk = BulkRunner(self.store, base_url=lambda: self.base_url, step_delay=bulk_step_delay)
        self.graphql = GraphQLEndpoint(self.store, self.bucket, extra={"bulk": self.bulk})
        self.requests = 0
        self.app = self._build_app()

    def close(self) -> None:
        self.webhooks.close()

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a document in-process (no HTTP, no token, but charged to the bucket)."""
        return self.graphql.answer({"query": query, "variables": variables or {}}, base_url=self.base_url)

    def _fault(self) -> Response | None:
        fault: ApiFault = self.faults.next()
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            sock = request.environ.get(SOCKET)
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            return Response("", status=500)
        if fault.status == 429:
            response = _json(
                {
                    "errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                    "resume uninterrupted service."
                },
                429,
            )
            response.headers["Retry-After"] = fault.retry_after or "2.0"
            return response
        if fault.status >= 500:
            return _json(
                {"errors": "Internal Server Error"}
                if fault.status == 500
                else {"errors": "Service Unavailable"},
                fault.status,
            )
        if fault.status != 200:
            return _json({"errors": "Error"}, fault.status)
        return None

    def _build_app(self) -> Flask:
        app = Flask(__name__)

        @app.post("/admin/api/<version>/graphql.json")
        def graphql(version: str) -> Response:
            self.requests += 1
            failed = self._fault()
            if failed is not None:
                return failed
            if version != API_VERSION:
                return _json({"errors": "Not Found"}, 404)
            if not self.oauth.check(request.headers.get("X-Shopify-Access-Token")):
                return _json({"errors": INVALID_TOKEN}, 401)
            try:
                body = orjson.loads(request.get_data(cache=False) or b"null")
            except orjson.JSONDecodeError:
                return _json({"errors": {"query": "Required parameter missing or invalid"}}, 400)
            return _json(self.graphql.answer(body, base_url=self.base_url))

        @app.get("/admin/oauth/authorize")
        def authorize() -> Response:
            params = {
                key: value for key, value in request.args.items() if not key.startswith("grant_options")
            }
            status, answer = self.oauth.authorize(params)
            if status == 302 and isinstance(answer, str):
                return redirect(answer, code=302)  # type: ignore[return-value]
            return _json(answer, status)

        @app.post("/admin/oauth/access_token")
        def access_token() -> Response:
            if request.is_json:
                params = dict(request.get_json(silent=True) or {})
            else:
                params = dict(request.form.items()) or dict(request.args.items())
            status, answer = self.oauth.token(params)
            return _json(answer, status)

        @app.get("/bulk/<int:operation_id>.jsonl")
        def bulk_result(operation_id: int) -> Response:
            operation = self.store.bulk_operations.get(operation_id)
            if operation is None or operation.body is None:
                return Response("Not Found", status=404, mimetype="text/plain")
            return Response(operation.body, mimetype="application/jsonl")

        return app


class Server:
    """An emulator served on `host` (127.0.0.1 unless given) from a background thread: `.url` is the shop's
    base URL; its control endpoints answer under `/_sandbox` (`connector.sandbox.shopify.control`)."""

    def __init__(self, emulator: ShopifyEmulator, port: int = 0, host: str = "127.0.0.1"):
        self.emulator = emulator
        self.store = emulator.store
        served = control.mount(emulator.app, shop_control.build(emulator))
        self._server: KeepAliveServer = KeepAliveServer(host, port, served)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self.graphql_url = f"{self.url}{GRAPHQL_PATH}"
        emulator.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shopify-emulator", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.emulator.close()


@contextmanager
def serve(
    port: int = 0, emulator: ShopifyEmulator | None = None, *, host: str = "127.0.0.1", **options: Any
) -> Iterator[Server]:
    """Run an emulator (a new one built from `options` unless given) on `host`:`port` (0 picks a free one)."""
    server = Server(emulator or ShopifyEmulator(**options), port, host)
    try:
        yield server
    finally:
        server.shutdown()
