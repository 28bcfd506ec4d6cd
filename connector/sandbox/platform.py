"""The platform's webhook receiver, emulated: verifies Standard Webhooks signatures, deduplicates on
`webhook-id`, records what it received, and fails on request (status plans, latency, Retry-After, dropped
connections). It also shows the requests it is answering right now, so a test can act in the middle of one.
`serve()` runs it on 127.0.0.1 in a background thread for tests and the demo.

Its control endpoints (under `/_sandbox` beside the webhook path; see `connector.sandbox.control`):

    GET    /_sandbox               the webhook address, how many secrets it verifies with, these endpoints
    GET    /_sandbox/events        the events received and verified, oldest first (`?type=order.confirmed`,
                                   `?limit=50` for the last 50), with the counts of requests, unverified ones
                                   and duplicates
    DELETE /_sandbox/events        forget what was received
    POST   /_sandbox/secrets       {"secret": "whsec_..."}: also verify with this endpoint secret (as
                                   `storelink webhooks add` or `POST /v1/webhook-endpoints` printed it)
    POST   /_sandbox/faults        {"next": [500, {"status": 503, "retry_after": 5}, {"latency": 3},
                                   {"drop": true}], "default"?: 200 | {...}}: answers of the next deliveries,
                                   then of every one
    DELETE /_sandbox/faults        answer 200 again"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import Flask, Response, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connector.sandbox.control import ControlError, answer, body, control_app, fault, faults, mount
from connector.sandbox.serving import SOCKET, KeepAliveServer

logger = logging.getLogger(__name__)

PATH = "/webhooks/storelink"
CONTROL_ENDPOINTS = (
    "GET /_sandbox",
    "GET /_sandbox/events",
    "DELETE /_sandbox/events",
    "POST /_sandbox/secrets",
    "POST /_sandbox/faults",
    "DELETE /_sandbox/faults",
)


@dataclass(frozen=True, slots=True)
class Fault:
    """How to answer one request: a status, added latency, a Retry-After header, or a dropped connection."""

    status: int = 200
    latency: float = 0.0
    retry_after: str | None = None
    drop: bool = False
    body: str = ""


@dataclass(frozen=True, slots=True)
class Received:
    """A verified event, recorded once however many times it was delivered."""

    webhook_id: str
    type: str
    data: dict[str, Any]
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Request:
    """Every request that reached the receiver, and how it was answered (None when dropped)."""

    webhook_id: str | None
    verified: bool
    status: int | None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class InProgress:
    """A verified request being answered: when it arrived and the latency it was given."""

    webhook_id: str | None
    started: float
    latency: float


class PlatformReceiver:
    """A thread-safe in-memory receiver; `app` is its WSGI application."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: list[str] = list(secrets)
        self._plan: list[Fault] = []
        self._default = Fault()
        self._received: dict[str, Received] = {}
        self._requests: list[Request] = []
        self._in_progress: dict[int, InProgress] = {}
        self._next_ticket = 0
        self.duplicates = 0
        self.peak_in_progress = 0
        self.app = self._build_app()

    # --- configuration ---------------------------------------------------------------------------------

    def set_secrets(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets = list(secrets)

    def add_secret(self, secret: str) -> None:
        with self._lock:
            self._secrets.append(secret)

    def plan(self, *faults: Fault | int) -> None:
        """Answer the next requests with these faults (ints are plain statuses), then with the default."""
        with self._lock:
            self._plan = [f if isinstance(f, Fault) else Fault(status=f) for f in faults]

    def set_default(self, fault: Fault | int) -> None:
        with self._lock:
            self._default = fault if isinstance(fault, Fault) else Fault(status=fault)

    def secret_count(self) -> int:
        with self._lock:
            return len(self._secrets)

    def forget(self) -> None:
        """Forget what was received (faults and secrets stay)."""
        with self._lock:
            self._received.clear()
            self._requests.clear()
            self.duplicates = 0

    def reset(self) -> None:
        with self._lock:
            self._plan, self._default = [], Fault()
            self._received.clear()
            self._requests.clear()
            self._in_progress.clear()
            self.duplicates = 0
            self.peak_in_progress = 0

    # --- accessors ---------------------------------------------------------------------------------------

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received.values())

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def in_progress(self) -> list[InProgress]:
        """Verified requests that have not been answered yet (oldest first)."""
        with self._lock:
            return sorted(self._in_progress.values(), key=lambda entry: entry.started)

    # --- the WSGI app ------------------------------------------------------------------------------------

    def _next_fault(self) -> Fault:
        with self._lock:
            return self._plan.pop(0) if self._plan else self._default

    def _verify(self, body: bytes, headers: dict[str, str]) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            return True
        return False

    def _build_app(self) -> Flask:
        app = Flask(__name__)

        @app.post(PATH)
        def receive() -> Response:
            body = request.get_data(cache=False)
            headers = {k.lower(): v for k, v in request.headers.items()}
            msg_id = headers.get("webhook-id")
            if not self._verify(body, headers):
                self._log(Request(msg_id, False, 401))
                return Response('{"error":"invalid signature"}', status=401, mimetype="application/json")
            fault = self._next_fault()
            ticket = self._begin(InProgress(msg_id, time.time(), fault.latency))
            try:
                return self._answer(body, msg_id, headers, fault)
            finally:
                with self._lock:
                    self._in_progress.pop(ticket, None)

        return app

    def _begin(self, entry: InProgress) -> int:
        with self._lock:
            self._next_ticket += 1
            self._in_progress[self._next_ticket] = entry
            self.peak_in_progress = max(self.peak_in_progress, len(self._in_progress))
            return self._next_ticket

    def _answer(self, body: bytes, msg_id: str | None, headers: dict[str, str], fault: Fault) -> Response:
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            self._log(Request(msg_id, True, None))
            sock = request.environ.get(SOCKET)
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            return Response("", status=500)
        self._log(Request(msg_id, True, fault.status))
        if 200 <= fault.status < 300 and msg_id:
            document = orjson.loads(body)
            with self._lock:
                if msg_id in self._received:
                    self.duplicates += 1
                else:
                    self._received[msg_id] = Received(
                        msg_id, str(document.get("type")), dict(document.get("data") or {}), body, headers
                    )
        response = Response(fault.body, status=fault.status, mimetype="text/plain")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        return response

    def _log(self, entry: Request) -> None:
        with self._lock:
            self._requests.append(entry)
        logger.debug(
            "platform receiver request", extra={"webhook_id": entry.webhook_id, "status": entry.status}
        )


def control(receiver: PlatformReceiver) -> Flask:
    """The receiver's control app (see the module docstring)."""
    app = control_app("platform-sandbox")

    @app.get("/")
    def index() -> Response:
        return answer(
            {
                "webhook_url": f"{request.host_url.rstrip('/')}{PATH}",
                "secrets": receiver.secret_count(),
                "endpoints": CONTROL_ENDPOINTS,
            }
        )

    @app.get("/events")
    def events() -> Response:
        wanted = request.args.get("type")
        received = [r for r in receiver.received() if wanted is None or r.type == wanted]
        limit = request.args.get("limit", type=int)
        if limit is not None and limit > 0:
            received = received[-limit:]
        requests = receiver.requests()
        return answer(
            {
                "events": [{"webhook_id": r.webhook_id, "type": r.type, "data": r.data} for r in received],
                "requests": len(requests),
                "unverified": sum(1 for r in requests if not r.verified),
                "duplicates": receiver.duplicates,
            }
        )

    @app.delete("/events")
    def forget() -> Response:
        receiver.forget()
        return answer({"events": []})

    @app.post("/secrets")
    def add_secret() -> Response:
        secret = body().get("secret")
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            raise ControlError(400, "secret must be an endpoint secret (whsec_...)")
        receiver.add_secret(secret)
        return answer({"secrets": receiver.secret_count()}, 201)

    @app.post("/faults")
    def set_faults() -> Response:
        document = body()
        planned = faults(document, "next", Fault)
        receiver.plan(*planned)
        if "default" in document:
            receiver.set_default(fault(document["default"], Fault))
        return answer({"planned": len(planned)})

    @app.delete("/faults")
    def clear_faults() -> Response:
        receiver.plan()
        receiver.set_default(Fault())
        return answer({"planned": 0})

    return app


class Server:
    """A receiver served on `host` (127.0.0.1 unless given) from a background thread, its control endpoints
    under `/_sandbox`."""

    def __init__(self, receiver: PlatformReceiver, port: int = 0, host: str = "127.0.0.1"):
        self.receiver = receiver
        served = mount(receiver.app, control(receiver))
        self._server: KeepAliveServer = KeepAliveServer(host, port, served)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}{PATH}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="platform-receiver", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve(port: int = 0, secrets: Iterable[str] = (), host: str = "127.0.0.1") -> Iterator[Server]:
    """Run a new receiver on `host`:`port` (0 picks a free one) until the block ends."""
    server = Server(PlatformReceiver(secrets), port, host)
    try:
        yield server
    finally:
        server.shutdown()
