"""Store deliveries answered ahead of Flask (`webhooks.inbound.receiver.Receiver`): a delivery with a length
never reaches the Flask route and is answered as the route answers it; other spellings of the path, bodies
without a length and other methods reach the route; a failure is answered by the app's error handlers, and
the answers are counted and logged under the route."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from connector.infra import runtime
from tests.integration.test_inbound_webhooks import T0, Store
from webhooks.inbound import intake

VIEW = "inbound_webhooks.receive"


@pytest.fixture
def store(rt: runtime.Runtime, tmp_path: Path) -> Store:
    return Store(rt, tmp_path)


@pytest.fixture
def routed(store: Store) -> list[str]:
    """The paths of the deliveries that reached the Flask route."""
    seen: list[str] = []
    view = store.client.application.view_functions[VIEW]

    def counted(**kwargs: Any) -> Any:
        from flask import request

        seen.append(request.path)
        return view(**kwargs)

    store.client.application.view_functions[VIEW] = counted
    return seen


def test_deliveries_are_answered_ahead_of_flask_as_the_route_answers_them(
    store: Store, routed: list[str]
) -> None:
    delivery = store.pusher.inventory([("SKU-000001", 40)], at=T0)
    first = store.post(delivery)
    again = store.post(delivery)
    assert (
        first.status_code == 200
        and first.json["status"] == "accepted"
        and first.mimetype == "application/json"
    )
    assert again.json == {"status": "duplicate", "delivery_id": first.json["delivery_id"]}
    forged = dict(delivery.headers, **{"webhook-signature": "v1,AAAA"})
    refused = store.post(store.pusher.inventory([("SKU-000002", 1)], at=T0), headers=forged)
    assert refused.status_code == 401 and refused.json["code"] == "bad_signature"
    assert store.client.post("/webhooks/nowhere", data=b"{}").json["code"] == "unknown_source"
    assert store.client.post("/webhooks/feed", data=b"{}").json["code"] == "no_store"
    assert routed == []
    assert [status for _, status, _ in store.inbound()] == ["pending"]


def test_what_the_middleware_does_not_take_reaches_the_route(store: Store, routed: list[str]) -> None:
    padded = (
        f"/webhooks/feed/0{store.merchant_id}"  # the route's int converter reads it; the middleware leaves it
    )
    answer = store.post(store.pusher.inventory([("SKU-000001", 5)], at=T0), path=padded)
    assert answer.status_code == 200 and answer.json["status"] == "accepted"
    chunked = store.pusher.inventory([("SKU-000002", 6)], at=T0)
    streamed = store.client.post(
        store.path,
        input_stream=io.BytesIO(chunked.body),
        headers={**chunked.headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says of a chunked body
    )
    assert streamed.status_code == 200 and streamed.json["status"] == "accepted"
    assert store.client.get(store.path).status_code == 405
    assert routed == [padded, store.path]
    assert len(store.inbound()) == 2


def test_a_failure_is_answered_by_the_apps_error_handlers(
    store: Store, routed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any, **kwargs: Any) -> int | None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(intake, "store", failing)
    failed = store.push([("SKU-000001", 40)], at=T0)
    assert failed.status_code == 500 and failed.json["code"] == "internal_error"
    assert routed == [] and store.inbound() == []


def test_answers_ahead_of_flask_are_counted_under_the_route(store: Store) -> None:
    for n in range(3):
        assert store.push([("SKU-000001", 40 + n)], at=T0).status_code == 200
    metrics = store.client.get("/metrics").get_data(as_text=True)
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("storelink_http_requests_total{")
        and 'endpoint="/webhooks/<source>/<int:merchant_id>"' in line
        and 'status="200"' in line
    ]
    assert counted and counted[0] >= 3
