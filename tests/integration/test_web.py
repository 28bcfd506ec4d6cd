"""The web app through its WSGI interface: health, readiness, metrics, problem documents, request ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from config.settings import load_settings
from connector.app import create_app
from connector.infra import runtime
from connector.infra.logs import JsonFormatter
from tests.helpers import add_feed_merchant, sync_now


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_is_503_when_redis_is_down(settings, tmp_path):
    broken = runtime.Runtime(settings=settings, redis_url="redis://127.0.0.1:1/0")
    client = create_app(settings, broken).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_unknown_route_is_a_problem_document(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 404 and body["code"] == "not_found" and body["type"].endswith("/not_found")


def test_wrong_method_is_405_with_allow(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_413(rt):
    settings = load_settings(**{**rt.settings.model_dump(), "max_request_bytes": 1024})
    client = create_app(settings, rt).test_client()
    response = client.post("/healthz", data=b"x" * 4096)
    assert response.status_code == 413
    assert response.get_json()["code"] == "request_entity_too_large"
    assert response.headers["X-Request-Id"]


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert made and " " not in made


def test_metrics_show_http_queue_and_sync_counts(rt, client, tmp_path):
    from connector.sandbox.feeds import write_feed

    feed = write_feed(tmp_path / "feed.csv", 30, variants_per_product=3)
    sync_now(rt, add_feed_merchant(rt, feed))
    client.get("/healthz")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'storelink_sync_rows_total{outcome="created"} 30.0' in text
    assert 'storelink_sync_runs{status="succeeded"} 1.0' in text
    assert 'storelink_queue_depth{queue="orders"} 0.0' in text
    assert 'storelink_jobs{queue="bulk",state="finished"} 1.0' in text
    assert 'storelink_merchants{kind="feed",status="installed"} 1.0' in text
    assert 'storelink_http_requests_total{endpoint="/healthz",method="GET",status="200"}' in text


class _JsonLines(logging.Handler):
    """Log lines as the JSON formatter writes them when they are logged (the request id included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def access_lines() -> Iterator[list[dict[str, object]]]:
    handler = _JsonLines()
    access = logging.getLogger("connector.web.context")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.DEBUG)
    yield handler.lines
    access.removeHandler(handler)
    access.setLevel(level)


def test_each_request_has_an_access_line_with_its_request_id(client, access_lines):
    client.get("/v1/no-such-thing", headers={"X-Request-Id": "req-7"})
    client.get("/healthz")  # health checks and scrapes are not logged

    (line,) = [line for line in access_lines if line["msg"] == "request"]
    assert line["level"] == "info" and line["request_id"] == "req-7"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/no-such-thing", 404)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_metrics_count_requests_by_route(client):
    client.get("/v1/no-such-thing")
    client.post("/healthz", data=b"x")  # refused in routing: no route either
    client.get("/healthz")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'storelink_http_requests_total{endpoint="unmatched",method="GET",status="404"}' in text
    assert 'storelink_http_requests_total{endpoint="unmatched",method="POST",status="405"}' in text
    assert 'storelink_http_request_duration_seconds_count{endpoint="/healthz",method="GET"}' in text
    assert 'endpoint="/metrics"' not in text
