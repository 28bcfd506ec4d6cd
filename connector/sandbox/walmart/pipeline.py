"""The Walmart emulator's request pipeline around every endpoint: request counting, injected faults,
throttling, token and header checks and the Accept check before; throttle headers, the echoed correlation id
and dropped connections after; and Walmart's error envelopes for raised errors and unknown paths or methods."""

from __future__ import annotations

import logging
import math
import socket
import time
from contextlib import suppress
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from connector.sandbox.serving import SOCKET
from connector.sandbox.walmart.envelopes import WalmartError, gateway_error, resource_errors
from connector.sandbox.walmart.faults import ApiFault
from connector.sandbox.walmart.routes.token import check_headers, check_token
from connector.sandbox.walmart.throttle import Grant
from connector.sandbox.walmart.wire import CORRELATION_ID, json_response

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def install(app: Flask, emulator: WalmartEmulator) -> None:
    """Run every request of `app` through the pipeline and answer errors in Walmart's envelopes."""
    app.before_request(lambda: before(emulator))
    app.after_request(lambda response: after(emulator, response))

    @app.errorhandler(WalmartError)
    def walmart_error(error: WalmartError) -> Response:
        response = (
            json_response(error.body, error.status)
            if error.body is not None
            else Response(b"", status=error.status)
        )
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if error.code == 405:
            return json_response(resource_errors("METHOD_NOT_ALLOWED", "Method not allowed"), 405)
        if error.code == 404:
            return json_response(
                resource_errors("URI_NOT_FOUND", f"No API at {request.path}", field="uri"), 404
            )
        return json_response(
            resource_errors("INVALID_REQUEST", error.description or "Bad request"), error.code or 400
        )


def fault_response(fault: ApiFault) -> Response | None:
    if fault.latency:
        time.sleep(fault.latency)
    if fault.drop:
        drop_connection()
        return Response("", status=500)
    if fault.drop_after:
        g.drop_after = True
    if fault.status == 429:
        response = json_response(
            gateway_error(
                "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
                "Too many requests",
                field="REQUEST_THRESHOLD_VIOLATED",
                category="APPLICATION",
            ),
            429,
        )
        response.headers["Retry-After"] = fault.retry_after or "2"
        return response
    if fault.status in (502, 503):
        return Response(b"", status=fault.status)
    if fault.status == 504:
        return json_response(
            resource_errors("DOWNSTREAM_SYSTEM_TIME_OUT", "Downstream system timed out", category="SYSTEM"),
            504,
        )
    if fault.status >= 500:
        return json_response(
            gateway_error("SYSTEM_ERROR.GMP_GATEWAY_API", "Internal server error", category="SYSTEM"),
            fault.status,
        )
    if fault.status != 200:
        return json_response(resource_errors("INVALID_REQUEST", "Injected error"), fault.status)
    return None


def drop_connection() -> None:
    sock = request.environ.get(SOCKET)
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def before(emulator: WalmartEmulator) -> Response | None:
    endpoint = request.endpoint
    if endpoint is None:
        return None
    g.endpoint = endpoint
    with emulator.store.lock:
        emulator.store.requests[endpoint] += 1
    emulator.store.process_due()
    failed = fault_response(emulator.faults.next(endpoint))
    if failed is not None:
        return failed
    grant = emulator.throttle.take(endpoint)
    g.grant = grant
    if not grant.allowed:
        logger.info("walmart emulator throttled", extra={"endpoint": endpoint})
        raise WalmartError(
            429,
            gateway_error(
                "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
                "Too many requests",
                field="REQUEST_THRESHOLD_VIOLATED",
                info="Request threshold violated for this API. Retry after the time in Retry-After.",
                category="APPLICATION",
            ),
            retry_after=grant.retry_after,
        )
    if endpoint != "token":
        check_token(emulator)
        check_headers()
    if request.accept_mimetypes and not request.accept_mimetypes.accept_json:
        raise WalmartError.resource(
            406, "INVALID_ACCEPT_TYPE", "Only application/json is supported", field="Accept"
        )
    return None


def after(emulator: WalmartEmulator, response: Response) -> Response:
    endpoint = g.get("endpoint")
    if endpoint is not None:
        grant: Grant = g.get("grant") or emulator.throttle.peek(endpoint)
        response.headers["X-Current-Token-Count"] = str(grant.remaining)
        response.headers["X-Next-Replenishment-Time"] = str(grant.next_replenishment_ms)
    correlation = request.headers.get(CORRELATION_ID)
    if correlation:
        response.headers[CORRELATION_ID] = correlation
    if g.get("drop_after"):
        drop_connection()
    return response
