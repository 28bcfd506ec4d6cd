"""The /metrics endpoint and the HTTP instrumentation that feeds it."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.infra.metrics import HTTP_LATENCY, HTTP_REQUESTS, scrape_registry

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = scrape_registry(current_app.extensions["storelink"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _record(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    if endpoint != "/metrics":
        HTTP_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, endpoint).observe(
            time.perf_counter() - g.get("started", time.perf_counter())  # set by connector.web.context
        )
    return response


def init_app(app: Flask) -> None:
    app.after_request(_record)
    app.register_blueprint(bp)
