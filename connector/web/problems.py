"""RFC 9457 problem documents: every error the web app returns, with a stable machine-readable code."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from connector.domain.errors import AuthError, NotFoundError, PermanentError, RetryableError, ValidationError
from connector.infra.logs import EveryInterval

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "https://storelink.dev/problems/"
MEDIA_TYPE = "application/problem+json"
SERVICE_UNAVAILABLE = "service_unavailable"
_redis_log = EveryInterval(60.0)  # an outage refuses every request: log a few


def problem(status: int, code: str, detail: str, *, title: str | None = None, **extra: Any) -> Response:
    body = {
        "type": PROBLEM_TYPE + code,
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    if status in (429, 503) and "retry_after" in extra:
        response.headers["Retry-After"] = str(int(extra["retry_after"]))
    return response


def _http(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    response = problem(exc.code or 500, code, exc.description or exc.name or "error", title=exc.name)
    if exc.code == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def _storelink(exc: Exception) -> Response:
    if isinstance(exc, NotFoundError):
        return problem(404, exc.code, exc.message)
    if isinstance(exc, ValidationError):
        extra: dict[str, Any] = {"errors": exc.details["errors"]} if "errors" in exc.details else {}
        return problem(422, exc.code, exc.message, **extra)
    if isinstance(exc, AuthError):
        return problem(502, exc.code, exc.message, title="Store refused credentials")
    if isinstance(exc, PermanentError):
        return problem(400, exc.code, exc.message)
    if isinstance(exc, RetryableError):
        return problem(503, exc.code, exc.message, retry_after=exc.retry_after or 5)
    return _unexpected(exc)


def _redis_unavailable(exc: Exception) -> Response:
    if _redis_log.due():
        logger.warning("requests refused: Redis unreachable", extra={"error": str(exc)})
    return problem(
        503,
        SERVICE_UNAVAILABLE,
        "Redis (stock counters, queues) is unreachable; try again shortly",
        title="Service unavailable",
        retry_after=5,
    )


def _unexpected(exc: Exception) -> Response:
    logger.error("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "An unexpected error occurred; it has been logged.")


def error_answer(app: Flask, environ: dict[str, Any], exc: Exception) -> Response:
    """The answer the app's error handlers give `exc`, for a request answered ahead of Flask by WSGI middleware
    (a request context is made for it: errors are rare on those paths)."""
    with app.request_context(environ):
        return app.make_response(app.handle_user_exception(exc))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(PermanentError, _storelink)
    app.register_error_handler(RetryableError, _storelink)
    app.register_error_handler(RedisConnectionError, _redis_unavailable)
    app.register_error_handler(RedisTimeoutError, _redis_unavailable)
    app.register_error_handler(Exception, _unexpected)
