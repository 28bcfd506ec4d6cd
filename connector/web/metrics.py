"""The /metrics endpoint and the HTTP instrumentation that feeds it."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.infra.metrics import HTTP_LATENCY, HTTP_REQUESTS, scrape_registry

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = scrape_registry(current_app.extensions["storelink"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


# The labelled series, by (method, route, status): `labels()` takes a lock and builds a key on every call.
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _record(response: Response) -> Response:
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    if endpoint != "/metrics":
        method, status = request.method, response.status_code
        series = _series.get((method, endpoint, status))
        if series is None:
            series = _series[(method, endpoint, status)] = (
                HTTP_REQUESTS.labels(method, endpoint, str(status)),
                HTTP_LATENCY.labels(method, endpoint),
            )
        series[0].inc()
        series[1].observe(time.perf_counter() - g.get("started", time.perf_counter()))  # set by web.context
    return response


def init_app(app: Flask) -> None:
    app.after_request(_record)
    app.register_blueprint(bp)
