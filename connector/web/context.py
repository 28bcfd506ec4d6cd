"""Per-request context: request ids (taken from X-Request-Id or made), access logging, body-size limit.

A view may lower its request's access-log level with `quiet_access_log()`: the store webhook receiver does
for deliveries it stored, since each one is already a row (InboundEvent) and a line per delivery at
thousands a second would drown the log; refusals and errors are still logged at INFO.
"""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Flask, Response, abort, current_app, g, request

from connector.infra.logs import request_id_var

logger = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _before() -> None:
    # Every request runs this (the link redirect thousands of times a second): the WSGI environ is read
    # directly, and the request id is 32 random hex characters.
    environ = request.environ
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    request_id = incoming if incoming and _SAFE_ID.fullmatch(incoming) else os.urandom(16).hex()
    g.request_id = request_id
    g.request_token = request_id_var.set(request_id)
    g.started = time.perf_counter()
    if environ.get("CONTENT_LENGTH"):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            # Refused before routing or reading; bodies without a length are cut at MAX_CONTENT_LENGTH on read.
            abort(413, f"request body larger than {limit} bytes")


def quiet_access_log() -> None:
    """Log this request's access line at DEBUG instead of INFO."""
    g.access_log_level = logging.DEBUG


def _after(response: Response) -> Response:
    response.headers.add("X-Request-Id", g.get("request_id", ""))
    level = g.get("access_log_level", logging.INFO)
    if logger.isEnabledFor(level) and request.path not in ("/healthz", "/metrics"):
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        logger.log(
            level,
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed_ms, 2),
            },
        )
    return response


def _teardown(_exc: BaseException | None) -> None:
    token = g.pop("request_token", None)
    if token is not None:
        request_id_var.reset(token)


def init_app(app: Flask, max_request_bytes: int) -> None:
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
