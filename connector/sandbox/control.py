"""Control endpoints of the emulators, under `/_sandbox` on each emulator's own port: what a developer trying
a flow by hand (`storelink sandbox`) or a test drives: products and stock, orders fulfilled, refunded or
cancelled in the store, faults injected, what the platform received. They live in an app of their own mounted
beside the emulator's API, so the store's wire formats stay exactly as the store has them.

Bodies and answers are JSON objects; a body that is not one, or a bad field, is a 400 `{"error": ...}`, an
unknown id a 404 `{"error": ...}`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from _typeshed.wsgi import WSGIApplication

PREFIX: Final = "/_sandbox"

FaultT = TypeVar("FaultT", bound="DataclassInstance")
T = TypeVar("T")


class ControlError(Exception):
    """A control call that cannot be carried out: `status` and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def answer(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status=status, mimetype="application/json")


def control_app(name: str) -> Flask:
    """A Flask app for one emulator's control endpoints, answering errors as `{"error": ...}`."""
    app = Flask(name)
    app.url_map.strict_slashes = False  # `/_sandbox` itself, with or without its slash

    @app.errorhandler(404)
    def unknown(error: HTTPException) -> Response:
        where = f"{request.method} {request.script_root}{request.path}"
        return answer({"error": f"no control endpoint {where}; GET {PREFIX} lists them"}, 404)

    @app.errorhandler(405)
    def wrong_method(error: HTTPException) -> Response:
        return answer(
            {"error": f"{request.method} is not allowed on {request.script_root}{request.path}"}, 405
        )

    @app.errorhandler(ControlError)
    def refused(error: ControlError) -> Response:
        return answer({"error": str(error)}, error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return answer({"error": error.description or error.name}, error.code or 400)

    return app


def mount(api: WSGIApplication, control: Flask) -> WSGIApplication:
    """`api` with `control` answering every path under PREFIX."""
    return DispatcherMiddleware(api, {PREFIX: control})


def body() -> dict[str, Any]:
    """The request's JSON object (an empty body is `{}`)."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ControlError(400, "the body is not JSON") from None
    if not isinstance(document, dict):
        raise ControlError(400, "the body must be a JSON object")
    return document


def integer(document: Mapping[str, Any], name: str, default: int | None = None, minimum: int = 0) -> int:
    value = document.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ControlError(400, f"{name} must be a whole number of at least {minimum}")
    return value


def units(document: Mapping[str, Any], name: str = "lines") -> dict[int, int] | None:
    """`{"<line id>": units, ...}` as numbers, or None when absent (every line)."""
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ControlError(400, f"{name} must map line ids to units")
    try:
        return {int(key): int(count) for key, count in value.items()}
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must map line ids to units") from None


def fault(spec: Any, kind: type[FaultT]) -> FaultT:
    """A fault from `503` or `{"status": 429, "retry_after": 2, "latency": 1.5, "drop": true, ...}`."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return kind(status=spec)  # type: ignore[call-arg]
    if not isinstance(spec, dict):
        raise ControlError(400, "a fault is a status or an object (status, latency, retry_after, drop)")
    known = {field.name for field in dataclasses.fields(kind)}
    unknown = set(spec) - known
    if unknown:
        raise ControlError(400, f"unknown fault fields: {', '.join(sorted(unknown))}")
    fields = dict(spec)
    if fields.get("retry_after") is not None:
        fields["retry_after"] = str(fields["retry_after"])
    try:
        return kind(**fields)
    except TypeError as exc:
        raise ControlError(400, str(exc)) from None


def faults(document: Mapping[str, Any], name: str, kind: type[FaultT]) -> list[FaultT]:
    value = document.get(name) or []
    if not isinstance(value, list):
        raise ControlError(400, f"{name} must be a list of faults")
    return [fault(spec, kind) for spec in value]


def probability(document: Mapping[str, Any]) -> float:
    value = document.get("probability", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ControlError(400, "probability must be a number from 0 to 1")
    return float(value)


def found(lookup: Callable[[], T], what: str) -> T:
    """`lookup()`, an unknown id (KeyError) answered as a 404 naming `what`."""
    try:
        return lookup()
    except KeyError:
        raise ControlError(404, f"no {what}") from None
