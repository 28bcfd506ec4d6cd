"""Reservations against a real Redis and database: no oversell under concurrency, counters rebuilt from the
database after a flush (also when the flush lands between a reservation and its commit), expiry, stale
store levels."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connector.infra import runtime
from connector.infra.models import InventoryLevel, Order, Reservation
from connector.orders import push, reconcile
from connector.stock import counters, rebuild
from tests.integration.checkout_support import (
    Shop,
    assert_problem,
    counter,
    held,
    in_threads,
    make_shop,
    order_body,
    order_count,
    post_order,
)

Runtime = runtime.Runtime
PRICE = 1_250


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(20, 8), prices=(PRICE, PRICE), buffer=2)


def test_concurrent_orders_never_exceed_the_sellable_stock(shop: Shop) -> None:
    variant = shop.variants[1]  # 8 in the store, 2 kept back: 6 sellable
    statuses: Counter[int] = Counter()

    def buyer(_index: int) -> None:
        for _ in range(3):
            statuses[post_order(shop.http(), shop.auth, order_body(variant, PRICE)).status_code] += 1

    in_threads(8, buyer)

    assert statuses[201] == 6 and statuses[409] == 8 * 3 - 6
    assert held(shop.rt, variant) == 6 and order_count(shop.rt) == 6
    assert counter(shop.rt, counters.variant_key(variant)) == 0


def test_a_flushed_counter_is_rebuilt_with_every_hold(shop: Shop) -> None:
    variant = shop.variants[0]
    for _ in range(3):
        assert post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=4)).status_code == 201
    shop.rt.redis.flushdb()

    refused = post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=7))
    assert assert_problem(refused, 409, "insufficient_stock")["available"] == 6  # 20 - 12 held - 2 buffer
    assert post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=6)).status_code == 201
    assert counter(shop.rt, counters.variant_key(variant)) == 0
    with shop.rt.db.session() as session:
        assert rebuild.held_by_variant(session, [variant]) == {variant: 18}


def test_concurrent_rebuilders_write_the_counter_once(shop: Shop) -> None:
    variant = shop.variants[0]
    post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=5))
    shop.rt.redis.flushdb()
    wrote: list[bool] = []
    lock = threading.Lock()

    def rebuild_once(_index: int) -> None:
        done = rebuild.rebuild_variant(shop.rt, variant)
        with lock:
            wrote.append(done)

    in_threads(6, rebuild_once)

    assert wrote.count(True) == 1
    assert counter(shop.rt, counters.variant_key(variant)) == 13


def test_a_rebuild_between_a_live_reservation_and_its_commit_is_not_double_counted(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = shop.http()
    session_id = http.post(
        "/v1/live-sessions", json={"merchant_id": shop.merchant_id, "title": "t"}, headers=shop.auth
    ).get_json()["id"]
    http.post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth)
    pin = http.post(
        f"/v1/live-sessions/{session_id}/pins",
        json={"variant_id": shop.variants[0], "flash_price_minor": 500, "allocation": 3},
        headers=shop.auth,
    ).get_json()
    real = counters.same_generations
    interfered: list[bool] = []

    def flush_then_check(redis: object, counters: dict[str, str]) -> bool:
        if not interfered:  # Redis is lost after the Lua reservation, and another request rebuilds it
            interfered.append(True)
            shop.rt.redis.flushdb()
            threading.Thread(target=rebuild.rebuild_pin, args=(shop.rt, pin["id"])).start()
        return real(shop.rt.redis, counters)

    monkeypatch.setattr(counters, "same_generations", flush_then_check)
    body = {
        "lines": [{"variant_id": shop.variants[0], "quantity": 2, "unit_price_minor": 500}],
        "currency": "USD",
        "buyer": {"ref": "b"},
        "live_session_id": session_id,
    }

    assert post_order(http, shop.auth, body).status_code == 201
    assert post_order(http, shop.auth, body).status_code == 409  # 1 left, not 3 - 2 + 3

    assert interfered and order_count(shop.rt) == 1
    assert counter(shop.rt, counters.pin_key(pin["id"])) == 1
    with shop.rt.db.session() as session:
        allocation = session.get(Reservation, counters.allocation_id(pin["id"]))
        assert allocation is not None and allocation.quantity == 1


def test_the_expiry_job_releases_overdue_holds_of_orders_given_up_on(shop: Shop) -> None:
    variant = shop.variants[0]
    kept = post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=3)).get_json()
    overdue = post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=5)).get_json()
    assert counter(shop.rt, counters.variant_key(variant)) == 10
    with shop.rt.db.session() as session:
        session.execute(update(Reservation).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))

    # Both overdue, but their pushes are still being tried: the buyers paid, the units stay held.
    assert reconcile.reconcile(shop.rt)["expired"] == 0
    assert counter(shop.rt, counters.variant_key(variant)) == 10
    with shop.rt.db.session() as session:  # the sweeper gave up on one of them
        session.execute(
            update(Order)
            .where(Order.public_id == overdue["id"])
            .values(push_attempts=push.MAX_SWEPT_ATTEMPTS)
        )

    report = reconcile.reconcile(shop.rt)

    assert report["expired"] == 1
    assert counter(shop.rt, counters.variant_key(variant)) == 15
    assert held(shop.rt, variant) == 3
    with shop.rt.db.session() as session:
        states = {q: s for q, s in session.execute(select(Reservation.quantity, Reservation.state))}
    assert states == {3: "active", 5: "expired"}
    assert reconcile.reconcile(shop.rt)["expired"] == 0
    assert counter(shop.rt, counters.variant_key(variant)) == 15
    assert kept["id"] != overdue["id"]


def test_a_store_level_change_makes_the_counter_stale(shop: Shop) -> None:
    variant = shop.variants[0]
    assert post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=2)).status_code == 201
    with shop.rt.db.session() as session:  # the store sold 14 elsewhere: 6 left there, 2 of them held here
        session.execute(
            update(InventoryLevel)
            .where(InventoryLevel.variant_id == variant)
            .values(available=6, version=InventoryLevel.version + 1, source_updated_at=datetime.now(UTC))
        )

    refused = post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=3))

    assert assert_problem(refused, 409, "insufficient_stock")["available"] == 2
    assert post_order(shop.http(), shop.auth, order_body(variant, PRICE, quantity=2)).status_code == 201
