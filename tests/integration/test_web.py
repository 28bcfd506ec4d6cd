"""The web app through its WSGI interface: health, readiness, metrics, problem documents, request ids."""

from __future__ import annotations

from config.settings import load_settings
from connector.app import create_app
from connector.infra import runtime
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
