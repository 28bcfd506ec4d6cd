"""The /metrics endpoint and the HTTP instrumentation that feeds it (`observe`, called by web.context for
every request)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.infra.metrics import HTTP_LATENCY, HTTP_REQUESTS, scrape_registry

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = scrape_registry(current_app.extensions["storelink"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


# The labelled series, by (method, route, status): `labels()` takes a lock and builds a key on every call.
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(method: str, endpoint: str, status: int, seconds: float) -> None:
    """Count a request answered by `endpoint` (its route rule, or "unmatched") and its duration."""
    series = _series.get((method, endpoint, status))
    if series is None:
        series = _series[(method, endpoint, status)] = (
            HTTP_REQUESTS.labels(method, endpoint, str(status)),
            HTTP_LATENCY.labels(method, endpoint),
        )
    series[0].inc()
    series[1].observe(seconds)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
