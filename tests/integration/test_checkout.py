"""`POST /v1/orders` and friends over HTTP: holds, idempotency, price and stock refusals, cancel, listing,
and the push job settling the holds (feed store: rejected; Shopify emulator: confirmed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from connector.bench.shopify import add_shopify_merchant, bind_variants
from connector.domain.errors import PermanentError
from connector.infra import runtime
from connector.infra.models import InventoryLevel, Merchant, Order, Reservation, Variant
from connector.orders import cancel, push, reconcile
from connector.sandbox.shopify.app import Server, serve
from connector.stock import counters, rebuild
from tests.integration.checkout_support import (
    Shop,
    assert_problem,
    build_app,
    counter,
    events_of,
    held,
    in_threads,
    make_client,
    make_shop,
    order_body,
    order_count,
    post_order,
)

Runtime = runtime.Runtime


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(5, 3, None), prices=(1_250, 990, 500))


def _reservations(rt: Runtime, order_public_id: str) -> list[tuple[str, int]]:
    with rt.db.session() as session:
        order = session.scalar(select(Order).where(Order.public_id == order_public_id))
        assert order is not None
        return [
            (r.state, r.quantity)
            for r in session.scalars(select(Reservation).where(Reservation.order_id == order.id))
        ]


# --- accepting and replaying -------------------------------------------------------------------------------


def test_an_order_is_accepted_with_its_stock_held_and_its_push_queued(shop: Shop) -> None:
    http = shop.http()
    v0, _v1, untracked = shop.variants
    body = {
        "lines": [
            {"variant_id": v0, "quantity": 2, "unit_price_minor": 1_250},
            {"variant_id": untracked, "quantity": 7, "unit_price_minor": 500},
        ],
        "currency": "USD",
        "buyer": {"ref": "buyer-1", "email": "b@example.com"},
        "platform_order_id": "P-1",
    }
    response = post_order(http, shop.auth, body, key="k-1")

    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert order["status"] == "accepted" and order["id"].startswith("ord_")
    assert order["total_minor"] == 2 * 1_250 + 7 * 500 and order["merchant_id"] == shop.merchant_id
    assert response.headers["Location"].endswith(f"/v1/orders/{order['id']}")
    assert _reservations(shop.rt, order["id"]) == [("active", 2)]  # the untracked line holds nothing
    assert counter(shop.rt, counters.variant_key(v0)) == 3
    ((accepted),) = events_of(shop.rt, "order.accepted")
    assert accepted["order_id"] == order["id"] and accepted["total_minor"] == order["total_minor"]
    with shop.rt.db.session() as session:
        order_id = session.scalar(select(Order.id).where(Order.public_id == order["id"]))
    assert shop.rt.queues.job_status(push.job_id(order_id or 0)) == "queued"

    fetched = http.get(f"/v1/orders/{order['id']}", headers=shop.auth)
    assert fetched.status_code == 200 and fetched.get_json()["lines"] == order["lines"]


def test_the_same_key_answers_the_first_answer_and_another_body_is_refused(shop: Shop) -> None:
    http = shop.http()
    body = order_body(shop.variants[0], 1_250)
    first = post_order(http, shop.auth, body, key="same")
    again = post_order(http, shop.auth, dict(reversed(list(body.items()))), key="same")

    assert (again.status_code, again.get_data()) == (first.status_code, first.get_data())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert order_count(shop.rt) == 1 and held(shop.rt, shop.variants[0]) == 1

    other = post_order(http, shop.auth, order_body(shop.variants[0], 1_250, quantity=2), key="same")
    assert_problem(other, 422, "idempotency_key_reused")
    assert order_count(shop.rt) == 1 and held(shop.rt, shop.variants[0]) == 1


def test_concurrent_requests_with_one_key_make_one_order(shop: Shop) -> None:
    body = order_body(shop.variants[0], 1_250)
    answers: list[tuple[int, bytes]] = []

    def buy(_index: int) -> None:
        response = post_order(shop.http(), shop.auth, body, key="race")
        answers.append((response.status_code, response.get_data()))

    in_threads(6, buy)

    assert {status for status, _ in answers} == {201}
    assert len({data for _, data in answers}) == 1
    assert order_count(shop.rt) == 1
    assert held(shop.rt, shop.variants[0]) == 1
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 4


# --- refusals -----------------------------------------------------------------------------------------------


def test_a_stale_price_is_refused_with_the_current_price_and_writes_nothing(shop: Shop) -> None:
    response = post_order(shop.http(), shop.auth, order_body(shop.variants[1], 1_000))

    problem = assert_problem(response, 409, "price_changed")
    assert problem["lines"] == [
        {
            "line": 0,
            "variant_id": shop.variants[1],
            "unit_price_minor": 1_000,
            "current_price_minor": 990,
            "currency": "USD",
        }
    ]
    assert order_count(shop.rt) == 0 and held(shop.rt, shop.variants[1]) == 0


def test_more_than_the_sellable_stock_is_refused_and_writes_nothing(shop: Shop, rt: Runtime) -> None:
    with rt.db.session() as session:
        session.execute(update(Merchant).values(inventory_buffer=1))
    response = post_order(shop.http(), shop.auth, order_body(shop.variants[1], 990, quantity=3))

    problem = assert_problem(response, 409, "insufficient_stock")
    assert problem["available"] == 2  # 3 in the store, 1 kept as the merchant's buffer
    assert order_count(rt) == 0 and held(rt, shop.variants[1]) == 0
    assert (
        post_order(shop.http(), shop.auth, order_body(shop.variants[1], 990, quantity=2)).status_code == 201
    )


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, None, 400, "idempotency_key_required"),
        ({"Idempotency-Key": "a b"}, None, 400, "idempotency_key_invalid"),
        ({"Idempotency-Key": "k"}, {"lines": [], "currency": "USD"}, 422, "invalid_request"),
        (
            {"Idempotency-Key": "k"},
            {"lines": [{"variant_id": "1", "quantity": 1, "unit_price_minor": 1}], "currency": "USD"},
            422,
            "invalid_request",
        ),
        (
            {"Idempotency-Key": "k"},
            {"lines": [{"variant_id": 1, "quantity": 0, "unit_price_minor": 1}], "currency": "USD"},
            422,
            "invalid_request",
        ),
        (
            {"Idempotency-Key": "k"},
            {"lines": [{"variant_id": 1, "quantity": 1, "unit_price_minor": 1}], "currency": "usd"},
            422,
            "invalid_request",
        ),
        (
            {"Idempotency-Key": "k"},
            {"lines": [{"variant_id": 1, "quantity": 1, "unit_price_minor": 1}], "currency": "USD", "x": 1},
            422,
            "invalid_request",
        ),
        (
            {"Idempotency-Key": "k"},
            {"lines": [{"variant_id": 999, "quantity": 1, "unit_price_minor": 1}], "currency": "USD"},
            422,
            "variant_not_found",
        ),
    ],
)
def test_bad_requests_are_problem_documents(
    shop: Shop, headers: dict[str, str], body: dict[str, Any] | None, status: int, code: str
) -> None:
    payload = body if body is not None else order_body(shop.variants[0], 1_250)
    response = shop.http().post("/v1/orders", json=payload, headers={**shop.auth, **headers})
    assert_problem(response, status, code)
    assert order_count(shop.rt) == 0


def test_duplicate_lines_wrong_currency_non_json_and_no_key(shop: Shop) -> None:
    http = shop.http()
    v0 = shop.variants[0]
    twice = {"lines": [order_body(v0, 1_250)["lines"][0]] * 2, "currency": "USD"}
    assert_problem(post_order(http, shop.auth, twice), 422, "invalid_request")
    assert_problem(
        post_order(http, shop.auth, {**order_body(v0, 1_250), "currency": "EUR"}), 422, "currency_mismatch"
    )
    raw = http.post("/v1/orders", data="lines", headers={**shop.auth, "Idempotency-Key": "k"})
    assert_problem(raw, 415, "unsupported_media_type")
    assert_problem(http.post("/v1/orders", json=order_body(v0, 1_250)), 401, "unauthorized")


def test_another_clients_variants_and_orders_are_invisible(shop: Shop, rt: Runtime, tmp_path: Path) -> None:
    _other_id, other_auth = make_client(rt, "platform-other")
    http = shop.http()
    assert_problem(
        post_order(http, other_auth, order_body(shop.variants[0], 1_250)), 422, "variant_not_found"
    )
    mine = post_order(http, shop.auth, order_body(shop.variants[0], 1_250)).get_json()
    assert_problem(http.get(f"/v1/orders/{mine['id']}", headers=other_auth), 404, "order_not_found")
    assert_problem(http.post(f"/v1/orders/{mine['id']}/cancel", headers=other_auth), 404, "order_not_found")
    assert http.get("/v1/orders", headers=other_auth).get_json()["data"] == []


def test_a_variant_of_a_paused_merchant_is_not_sellable(shop: Shop, rt: Runtime) -> None:
    with rt.db.session() as session:
        session.execute(update(Merchant).values(status="paused"))
    assert_problem(
        post_order(shop.http(), shop.auth, order_body(shop.variants[0], 1_250)), 409, "variant_not_sellable"
    )


# --- cancel and listing --------------------------------------------------------------------------------------


def test_cancel_releases_the_hold_once(shop: Shop) -> None:
    http = shop.http()
    order = post_order(http, shop.auth, order_body(shop.variants[0], 1_250, quantity=2)).get_json()
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 3

    cancelled = http.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "buyer asked"}, headers=shop.auth
    )
    again = http.post(f"/v1/orders/{order['id']}/cancel", headers=shop.auth)

    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert again.status_code == 200 and again.get_json()["status"] == "cancelled"
    assert _reservations(shop.rt, order["id"]) == [("released", 2)]
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 5
    (event,) = events_of(shop.rt, "order.cancelled")
    assert event["order_id"] == order["id"] and event["reason"] == "buyer asked"
    assert (
        shop.rt.queues.job_status(f"order-cancel-{_order_id(shop.rt, order['id'])}") is None
    )  # never pushed


def _order_id(rt: Runtime, public_id: str) -> int:
    with rt.db.session() as session:
        found = session.scalar(select(Order.id).where(Order.public_id == public_id))
        assert found is not None
        return found


def test_cancelling_a_pushed_order_queues_its_cancellation_in_the_store(shop: Shop) -> None:
    http = shop.http()
    order = post_order(http, shop.auth, order_body(shop.variants[0], 1_250)).get_json()
    order_id = _order_id(shop.rt, order["id"])
    with shop.rt.db.session() as session:
        session.execute(update(Order).where(Order.id == order_id).values(push_attempts=1))

    assert http.post(f"/v1/orders/{order['id']}/cancel", headers=shop.auth).status_code == 200
    assert shop.rt.queues.job_status(f"order-cancel-{order_id}") == "queued"
    with shop.rt.db.session() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status="rejected"))
    assert_problem(
        http.post(f"/v1/orders/{order['id']}/cancel", headers=shop.auth), 409, "order_not_cancellable"
    )


def test_orders_are_listed_newest_first_with_filters_and_cursor(shop: Shop) -> None:
    http = shop.http()
    made = [
        post_order(http, shop.auth, order_body(shop.variants[0], 1_250)).get_json()["id"] for _ in range(3)
    ]
    http.post(f"/v1/orders/{made[0]}/cancel", headers=shop.auth)

    first = http.get("/v1/orders?limit=2", headers=shop.auth).get_json()
    assert [o["id"] for o in first["data"]] == [made[2], made[1]] and first["next_cursor"]
    second = http.get(f"/v1/orders?limit=2&cursor={first['next_cursor']}", headers=shop.auth).get_json()
    assert [o["id"] for o in second["data"]] == [made[0]] and second["next_cursor"] is None

    cancelled = http.get("/v1/orders?status=cancelled", headers=shop.auth).get_json()["data"]
    assert [o["id"] for o in cancelled] == [made[0]]
    mine = http.get(f"/v1/orders?merchant_id={shop.merchant_id}", headers=shop.auth).get_json()["data"]
    assert len(mine) == 3
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert http.get(f"/v1/orders?created_from={future}", headers=shop.auth).get_json()["data"] == []
    assert http.get("/v1/orders?live_session_id=7", headers=shop.auth).get_json()["data"] == []
    assert_problem(http.get("/v1/orders?status=lost", headers=shop.auth), 422, "invalid_request")
    assert_problem(http.get("/v1/orders?cursor=bm9wZQ", headers=shop.auth), 422, "invalid_request")


# --- the push settles the holds -----------------------------------------------------------------------------------


def test_a_rejected_push_releases_the_hold_and_the_reconciler_gives_it_back(
    shop: Shop, tmp_path: Path
) -> None:
    order = post_order(shop.http(), shop.auth, order_body(shop.variants[0], 1_250, quantity=2)).get_json()
    key = counters.variant_key(shop.variants[0])
    assert counter(shop.rt, key) == 3
    with shop.rt.db.session() as session:  # the store stopped taking orders after this one was accepted
        session.execute(
            update(Merchant)
            .where(Merchant.id == shop.merchant_id)
            .values(kind="feed", config={"url": str(tmp_path / "feed.csv")})
        )

    with pytest.raises(PermanentError):  # feed stores take no orders: the push rejects it
        push.push_order(_order_id(shop.rt, order["id"]))

    assert _reservations(shop.rt, order["id"]) == [("released", 2)]
    assert events_of(shop.rt, "order.rejected")[0]["order_id"] == order["id"]
    reconcile.reconcile(shop.rt)
    assert counter(shop.rt, key) == 5
    reconcile.reconcile(shop.rt)
    assert counter(shop.rt, key) == 5  # given back once


@pytest.fixture
def shopify(rt: Runtime) -> Iterator[Server]:
    push._adapters.clear()
    with serve(maximum_available=10_000, restore_rate=1_000) as server:
        server.store.seed_catalog(1, 1, available=(1_000, 1_000))
        yield server
    push._adapters.clear()


def test_a_confirmed_hold_counts_until_the_store_level_catches_up(rt: Runtime, shopify: Server) -> None:
    client_id, auth = make_client(rt, "platform-shopify")
    merchant_id = add_shopify_merchant(rt, shopify.url)
    (variant_id,) = bind_variants(rt, merchant_id, shopify.store)
    with rt.db.session() as session:
        session.execute(update(Merchant).values(platform_client_id=client_id))
        price = session.scalar(select(Order.currency).limit(1))  # no orders yet
        assert price is None
        session.add(
            InventoryLevel(
                merchant_id=merchant_id,
                variant_id=variant_id,
                location_ref="default",
                available=4,
                source_updated_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
    with rt.db.session() as session:
        unit = session.get(Variant, variant_id)
        assert unit is not None
        unit_price = unit.price_minor
    http = build_app(rt).test_client()
    order = post_order(http, auth, order_body(variant_id, unit_price, quantity=3)).get_json()

    assert push.push_order(_order_id(rt, order["id"])) is not None

    assert _reservations(rt, order["id"]) == [("confirmed", 3)]
    key = counters.variant_key(variant_id)
    rebuild.rebuild_variant(rt, variant_id, only_missing=False)
    assert counter(rt, key) == 1  # the store has not said its stock went down: the sale still counts
    with rt.db.session() as session:
        assert rebuild.held_by_variant(session, [variant_id]) == {variant_id: 3}
    assert_problem(
        post_order(http, auth, order_body(variant_id, unit_price, quantity=2)), 409, "insufficient_stock"
    )

    with rt.db.session() as session:  # the store's stock webhook: 4 - 3
        session.execute(
            update(InventoryLevel)
            .where(InventoryLevel.variant_id == variant_id)
            .values(available=1, source_updated_at=datetime.now(UTC), version=InventoryLevel.version + 1)
        )
    with rt.db.session() as session:
        assert rebuild.held_by_variant(session, [variant_id]) == {variant_id: 0}
    reconcile.reconcile(rt)
    with rt.db.session() as session:
        (row,) = session.scalars(select(Reservation).where(Reservation.variant_id == variant_id))
        assert row.settled_at is not None
    # The stale counter is refused (level version changed) and rebuilt: 1 left, not 1 - 3.
    assert post_order(http, auth, order_body(variant_id, unit_price, quantity=1)).status_code == 201
    assert counter(rt, key) == 0


def test_a_confirmed_order_cancelled_over_the_api_is_cancelled_in_the_store(
    rt: Runtime, shopify: Server
) -> None:
    client_id, auth = make_client(rt, "platform-shopify")
    merchant_id = add_shopify_merchant(rt, shopify.url)
    (variant_id,) = bind_variants(rt, merchant_id, shopify.store)
    with rt.db.session() as session:
        session.execute(update(Merchant).values(platform_client_id=client_id))
        session.execute(update(Variant).values(inventory_tracked=False))
        unit_price = session.scalar(select(Variant.price_minor))
    assert unit_price is not None
    http = build_app(rt).test_client()
    order = post_order(http, auth, order_body(variant_id, unit_price)).get_json()
    order_id = _order_id(rt, order["id"])
    push.push_order(order_id)
    (created,) = shopify.store.orders.values()

    cancelled = http.post(f"/v1/orders/{order['id']}/cancel", headers=auth)

    assert cancelled.status_code == 200 and cancelled.get_json()["store_order_id"]
    assert rt.queues.job_status(f"order-cancel-{order_id}") == "queued"
    assert cancel.cancel_in_store(order_id) == cancelled.get_json()["store_order_id"]
    shopify.store.run_jobs(force=True)  # orderCancel is a job at the store
    assert created.cancelled_at is not None
