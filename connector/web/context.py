"""Per-request context: a WSGI middleware around the Flask app that gives every request its id (taken from
X-Request-Id or made), writes its access-log line and HTTP metrics, and refuses bodies over the size limit.

It works on the WSGI environ and the status line alone (no Flask hook, no request object of its own): the
link redirect runs it thousands of times a second. The request id is in the logging context
(`request_id_var`) while the app runs, and answered in `X-Request-Id`.

A view may lower its request's access-log level with `quiet_access_log()`: the store webhook receiver does
for deliveries it stored, since each one is already a row (InboundEvent) and a line per delivery at
thousands a second would drown the log; refusals and errors are still logged at INFO.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, Request, request

from connector.infra.logs import request_id_var
from connector.web import metrics
from connector.web.problems import problem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ACCESS_LOG_LEVEL: Final = "storelink.access_log_level"
"""The environ key `quiet_access_log` sets (a log level)."""
ROUTE: Final = "storelink.route"
"""The environ key a WSGI handler ahead of Flask names its route with (the metrics' endpoint label)."""
UNLOGGED_PATHS: Final = frozenset({"/healthz", "/metrics"})


def quiet_access_log(environ: WSGIEnvironment | None = None) -> None:
    """Log this request's access line at DEBUG instead of INFO: Flask's request's, or the one whose `environ`
    a handler ahead of Flask answers."""
    (request.environ if environ is None else environ)[ACCESS_LOG_LEVEL] = logging.DEBUG


def sized_body(environ: WSGIEnvironment) -> bytes | None:
    """For a handler ahead of Flask: the body of a request sent with a `Content-Length` (None for one sent
    without, chunked say, which Flask reads), left readable for Flask should it answer after all."""
    length = environ.get("CONTENT_LENGTH", "")
    if not length.isdigit() or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    raw: bytes = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


class _Answer:
    """What the app answered, noted when it starts its response (while Flask's request is still bound)."""

    __slots__ = ("endpoint", "path", "status")

    def __init__(self) -> None:
        self.status = 0
        self.endpoint = "unmatched"
        self.path = ""

    def note(self, environ: WSGIEnvironment, status: str) -> None:
        self.status = int(status[:3])
        found = environ.get("werkzeug.request")
        if isinstance(found, Request) and ROUTE not in environ:  # Flask's (the test client leaves werkzeug's)
            rule = found.url_rule
            self.endpoint = rule.rule if rule is not None else "unmatched"
            self.path = found.path
        else:  # answered ahead of Flask: the link redirect, or a refused body
            self.endpoint = environ.get(ROUTE, "unmatched")
            self.path = "/" + environ.get("PATH_INFO", "").encode("latin-1").decode(errors="replace").lstrip(
                "/"
            )


class RequestContext:
    """The WSGI middleware: request id, access log, metrics and the body-size limit around `app`."""

    def __init__(self, app: WSGIApplication, max_request_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if incoming and _SAFE_ID.fullmatch(incoming) else os.urandom(16).hex()
        answer = _Answer()

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            headers.append(("X-Request-Id", request_id))
            answer.note(environ, status)
            return start_response(status, headers, exc_info)

        token = request_id_var.set(request_id)
        try:
            if self._too_large(environ):
                limit = self.max_request_bytes
                # Refused before routing or reading; bodies without a length are cut at the limit on read.
                detail = f"request body larger than {limit} bytes"
                refusal = problem(413, "request_entity_too_large", detail, title="Request Entity Too Large")
                body = refusal(environ, respond)
            else:
                body = self.app(environ, respond)
            if answer.status:
                _finished(environ, answer, time.perf_counter() - started)
            return body
        finally:
            request_id_var.reset(token)

    def _too_large(self, environ: WSGIEnvironment) -> bool:
        length = environ.get("CONTENT_LENGTH")
        if not length or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""):
            return False
        try:
            return int(length) > self.max_request_bytes
        except ValueError:
            return False


def _finished(environ: WSGIEnvironment, answer: _Answer, seconds: float) -> None:
    method = environ.get("REQUEST_METHOD", "")
    if answer.endpoint != "/metrics":
        metrics.observe(method, answer.endpoint, answer.status, seconds)
    level = environ.get(ACCESS_LOG_LEVEL, logging.INFO)
    if logger.isEnabledFor(level) and answer.path not in UNLOGGED_PATHS:
        logger.log(
            level,
            "request",
            extra={
                "method": method,
                "path": answer.path,
                "status": answer.status,
                "duration_ms": round(seconds * 1000, 2),
            },
        )


def init_app(app: Flask, max_request_bytes: int) -> None:
    """Wrap the app's WSGI callable (Flask's test client goes through it too)."""
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    app.wsgi_app = RequestContext(app.wsgi_app, max_request_bytes)  # type: ignore[method-assign]
