"""Live purchases answered ahead of Flask (`connector.api.live_purchases`): with a cached key they never reach
the `create_order` route, and each answer (201, a replay, every refusal, a failure) is the one the route gives
for the same request; whatever the middleware cannot answer exactly so reaches the route."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.api.common import key_cache
from connector.infra import runtime
from connector.orders import live_checkout
from tests.integration.checkout_support import (
    Shop,
    assert_problem,
    live_pin,
    make_shop,
    order_count,
    post_order,
)

Runtime = runtime.Runtime
FLASH = 700
VIEW = "api_orders.create_order"


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(50, 5), prices=(1_000, 1_000))


@pytest.fixture
def routed(shop: Shop) -> list[str]:
    """The buyers of the requests that reached the Flask route."""
    seen: list[str] = []
    view: Callable[[], Any] = shop.app.view_functions[VIEW]

    def counted() -> Any:
        from flask import request

        body = request.get_json(silent=True) or {}
        seen.append(str((body.get("buyer") or {}).get("ref")))
        return view()

    shop.app.view_functions[VIEW] = counted
    return seen


def _live(shop: Shop, allocation: int, limit: int) -> int:
    return live_pin(shop, flash=FLASH, allocation=allocation, limit=limit)[0]


def _body(
    shop: Shop, session_id: int, buyer: str, price: int = FLASH, variant: int | None = None
) -> dict[str, Any]:
    return {
        "lines": [{"variant_id": variant or shop.variants[0], "quantity": 1, "unit_price_minor": price}],
        "currency": "USD",
        "buyer": {"ref": buyer},
        "live_session_id": session_id,
    }


def _by_route(shop: Shop, body: dict[str, Any], key: str | None = None) -> Any:
    """The request answered by the route: the process forgets the key's lookup first (the route caches it
    again, so the next request with a cached key is the middleware's)."""
    key_cache(shop.app).clear()
    return post_order(shop.http(), shop.auth, body, key)


def _same_answer(ours: Any, route: Any) -> None:
    assert (ours.status_code, ours.mimetype, ours.headers.get("Idempotent-Replayed")) == (
        route.status_code,
        route.mimetype,
        route.headers.get("Idempotent-Replayed"),
    )
    mine, theirs = ours.get_json(), route.get_json()
    if ours.status_code in (200, 201):
        assert sorted(mine) == sorted(theirs)
        for answer, body in ((ours, mine), (route, theirs)):
            assert answer.headers["Location"] == f"/v1/orders/{body['id']}"
    else:
        assert mine == theirs


def test_refusals_are_answered_ahead_of_flask_as_the_route_answers_them(
    shop: Shop, routed: list[str]
) -> None:
    session_id = _live(shop, allocation=3, limit=1)
    cases = [
        ("price", _body(shop, session_id, "p", price=FLASH + 1)),
        ("not-pinned", _body(shop, session_id, "n", variant=shop.variants[1])),
        ("other-session", _body(shop, session_id + 1000, "s")),
    ]
    for _, body in cases:
        route = _by_route(shop, body)
        ours = post_order(shop.http(), shop.auth, body)
        _same_answer(ours, route)
    assert_problem(ours, 404, "live_session_not_found")
    # Refused before the purchase script (which confirms a cached key): the route answers, checking the key.
    assert routed == ["p", "n", "n", "s", "s"]
    assert_problem(ours, 404, "live_session_not_found")

    assert _by_route(shop, _body(shop, session_id, "b1")).status_code == 201
    limit_route = _by_route(shop, _body(shop, session_id, "b1"))
    limit_ours = post_order(shop.http(), shop.auth, _body(shop, session_id, "b1"))
    _same_answer(limit_ours, limit_route)
    assert_problem(limit_ours, 409, "buyer_limit_exceeded")

    assert post_order(shop.http(), shop.auth, _body(shop, session_id, "b2")).status_code == 201
    assert post_order(shop.http(), shop.auth, _body(shop, session_id, "b3")).status_code == 201
    sold_route = _by_route(shop, _body(shop, session_id, "b4"))
    sold_ours = post_order(shop.http(), shop.auth, _body(shop, session_id, "b4"))
    _same_answer(sold_ours, sold_route)
    assert_problem(sold_ours, 409, "sold_out")
    assert routed[5:] == ["b1", "b1", "b4"]  # b2, b3 and the second of each pair never reached it
    assert order_count(shop.rt) == 3


def test_purchases_and_replays_are_answered_ahead_of_flask_as_the_route_answers_them(
    shop: Shop, routed: list[str]
) -> None:
    session_id = _live(shop, allocation=10, limit=5)
    route = _by_route(shop, _body(shop, session_id, "a"), key="key-a")
    ours = post_order(shop.http(), shop.auth, _body(shop, session_id, "b"), key="key-b")
    _same_answer(ours, route)
    assert ours.status_code == 201 and ours.get_json()["status"] == "accepted"
    assert (
        shop.http().get(ours.headers["Location"], headers=shop.auth).get_json()["id"] == ours.get_json()["id"]
    )

    replayed = post_order(shop.http(), shop.auth, _body(shop, session_id, "a"), key="key-a")
    replayed_route = _by_route(shop, _body(shop, session_id, "b"), key="key-b")
    _same_answer(replayed, replayed_route)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_json() == route.get_json() and replayed_route.get_json() == ours.get_json()

    reused = post_order(shop.http(), shop.auth, _body(shop, session_id, "other"), key="key-a")
    _same_answer(reused, _by_route(shop, _body(shop, session_id, "other"), key="key-b"))
    assert_problem(reused, 422, "idempotency_key_reused")
    assert routed == ["a", "b", "other"]
    assert order_count(shop.rt) == 2


def test_what_the_middleware_cannot_answer_exactly_reaches_the_route(shop: Shop, routed: list[str]) -> None:
    session_id = _live(shop, allocation=10, limit=5)
    assert _by_route(shop, _body(shop, session_id, "cached")).status_code == 201
    http = shop.http()

    assert_problem(
        http.post("/v1/orders", json=_body(shop, session_id, "no-key"), headers=shop.auth),
        400,
        "idempotency_key_required",
    )
    assert_problem(
        http.post(
            "/v1/orders",
            data=b'{"lines": [',
            headers={**shop.auth, "Idempotency-Key": "k-malformed", "Content-Type": "application/json"},
        ),
        400,
        "malformed_json",
    )
    assert_problem(post_order(http, shop.auth, _body(shop, session_id, "")), 422, "invalid_request")
    regular = {
        k: v for k, v in _body(shop, session_id, "regular", price=1_000).items() if k != "live_session_id"
    }
    assert post_order(http, shop.auth, regular).status_code == 201
    assert (
        post_order(http, {"Authorization": "Bearer sk_live_nope"}, _body(shop, session_id, "x")).status_code
        == 401
    )
    # The view parses the body (the malformed one has no buyer); the 401 was refused before the view.
    assert routed == ["cached", "no-key", "None", "", "regular"]


def test_a_purchase_that_fails_is_answered_by_the_apps_error_handlers(
    shop: Shop, routed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = _live(shop, allocation=10, limit=5)
    assert _by_route(shop, _body(shop, session_id, "cached")).status_code == 201

    def failing(session: Any, news: list[Any]) -> list[dict[str, Any]]:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(live_checkout, "persist_many", failing)
    failed = post_order(shop.http(), shop.auth, _body(shop, session_id, "b1"), key="k-1")
    assert_problem(failed, 500, "internal_error")
    assert routed == ["cached"] and order_count(shop.rt) == 1

    monkeypatch.undo()
    again = post_order(shop.http(), shop.auth, _body(shop, session_id, "b1"), key="k-1")
    assert again.status_code == 201  # nothing of the failed one was kept: its unit and key went back


def test_answers_ahead_of_flask_are_counted_and_logged_under_the_route(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = _live(shop, allocation=1, limit=1)
    assert _by_route(shop, _body(shop, session_id, "b1")).status_code == 201
    with caplog.at_level("INFO", logger="connector.web.context"):
        caplog.clear()
        assert post_order(shop.http(), shop.auth, _body(shop, session_id, "b2")).status_code == 409
        assert post_order(shop.http(), shop.auth, _body(shop, session_id, "b3", price=1)).status_code == 409
    statuses = [
        record.__dict__.get("status") for record in caplog.records if record.getMessage() == "request"
    ]
    assert statuses == [409]  # sold out is logged at DEBUG, as the route's stock refusals are

    metrics = shop.http().get("/metrics").get_data(as_text=True)
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("storelink_http_requests_total{")
        and 'endpoint="/v1/orders"' in line
        and 'method="POST"' in line
        and 'status="409"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2


def test_a_purchase_takes_from_the_pins_allocation_row_last(shop: Shop) -> None:
    """The allocation row's lock, which every purchase of the pin waits for, is held from its update to the
    commit only: the orders, holds, events and deliveries are written before it."""
    from sqlalchemy import event

    session_id = _live(shop, allocation=5, limit=5)
    assert _by_route(shop, _body(shop, session_id, "cached")).status_code == 201
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).upper())

    event.listen(shop.rt.db.engine, "before_cursor_execute", record)
    try:
        assert post_order(shop.http(), shop.auth, _body(shop, session_id, "b1")).status_code == 201
    finally:
        event.remove(shop.rt.db.engine, "before_cursor_execute", record)
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE", "COPY"))]
    # (PostgreSQL copies the holds and events in: those statements are not seen here.)
    assert writes[0].startswith("INSERT INTO ORDERS") and writes[1].startswith("INSERT INTO ORDER_LINES"), (
        writes
    )
    assert writes[-1].startswith("UPDATE RESERVATIONS"), writes
    assert sum(s.startswith("UPDATE RESERVATIONS") for s in writes) == 1, writes
