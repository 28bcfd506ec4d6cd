"""Live-stream shopping over HTTP: sessions, pins reserving their allocation, purchases against the pin's
allocation and per-buyer limit under concurrency (and across a Redis flush), stock alerts exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from connector.infra import runtime
from connector.infra.models import OrderLine, Reservation
from connector.orders import reconcile
from connector.stock import counters, rebuild
from tests.integration.checkout_support import (
    Shop,
    assert_problem,
    counter,
    events_of,
    in_threads,
    make_client,
    make_shop,
    order_count,
    post_order,
)

Runtime = runtime.Runtime
PRICE = 1_000
FLASH = 700


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(50, 5), prices=(PRICE, PRICE))


def _session(shop: Shop, *, start: bool = True) -> int:
    http = shop.http()
    made = http.post(
        "/v1/live-sessions",
        json={"merchant_id": shop.merchant_id, "title": "Friday drop", "creator_ref": "c-9"},
        headers=shop.auth,
    )
    assert made.status_code == 201, made.get_json()
    session_id: int = made.get_json()["id"]
    if start:
        assert http.post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth).status_code == 200
    return session_id


def _pin(shop: Shop, session_id: int, **body: Any) -> dict[str, Any]:
    payload = {"variant_id": shop.variants[0], "flash_price_minor": FLASH, "allocation": 20, **body}
    response = shop.http().post(f"/v1/live-sessions/{session_id}/pins", json=payload, headers=shop.auth)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def _buy(shop: Shop, session_id: int, buyer: str, quantity: int = 1, price: int = FLASH, **extra: Any) -> Any:
    body = {
        "lines": [{"variant_id": shop.variants[0], "quantity": quantity, "unit_price_minor": price}],
        "currency": "USD",
        "buyer": {"ref": buyer},
        "live_session_id": session_id,
        **extra,
    }
    return post_order(shop.http(), shop.auth, body)


def _sold(rt: Runtime, session_id: int) -> Counter[str]:
    """Units held by the session's orders (active or confirmed), per buyer."""
    with rt.db.session() as session:
        rows = session.execute(
            select(Reservation.buyer_ref, Reservation.quantity).where(
                Reservation.order_id.is_not(None), Reservation.state.in_(("active", "confirmed"))
            )
        ).all()
    sold: Counter[str] = Counter()
    for buyer, quantity in rows:
        sold[buyer or ""] += quantity
    return sold


def test_a_session_with_a_pin_sells_at_the_flash_price(shop: Shop) -> None:
    session_id = _session(shop, start=False)
    pin = _pin(shop, session_id, per_buyer_limit=3, countdown_seconds=600, low_stock_threshold=4)
    assert pin["remaining"] == 20 and pin["status"] == "active" and pin["countdown_ends_at"]
    # The allocation left the variant's sellable stock at once.
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 30

    assert_problem(_buy(shop, session_id, "b1"), 409, "pin_not_on_sale")  # not live yet
    assert shop.http().post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth).status_code == 200

    bought = _buy(shop, session_id, "b1", quantity=2)
    assert bought.status_code == 201, bought.get_json()
    order = bought.get_json()
    assert order["live_session_id"] == session_id and order["lines"][0]["live_pin_id"] == pin["id"]
    assert order["total_minor"] == 2 * FLASH

    stale = assert_problem(_buy(shop, session_id, "b1", price=PRICE), 409, "price_changed")
    assert stale["lines"][0]["current_price_minor"] == FLASH
    over = assert_problem(_buy(shop, session_id, "b1", quantity=2), 409, "buyer_limit_exceeded")
    assert over["remaining_for_buyer"] == 1
    assert_problem(_buy(shop, session_id, "", quantity=1), 422, "invalid_request")

    got = shop.http().get(f"/v1/live-sessions/{session_id}", headers=shop.auth).get_json()
    assert got["status"] == "live" and [p["remaining"] for p in got["pins"]] == [18]
    updates = events_of(shop.rt, "live.pin_updated")
    assert len(updates) == 3  # pinned, on sale, and the purchase (refused ones change nothing)
    assert updates[-1]["change"] == "purchase" and updates[-1]["remaining"] == 18


def test_a_pin_cannot_allocate_more_than_the_sellable_stock(shop: Shop) -> None:
    session_id = _session(shop)
    refused = shop.http().post(
        f"/v1/live-sessions/{session_id}/pins",
        json={"variant_id": shop.variants[1], "flash_price_minor": 1, "allocation": 6},
        headers=shop.auth,
    )
    assert assert_problem(refused, 409, "insufficient_stock")["available"] == 5
    _pin(shop, session_id, variant_id=shop.variants[1], allocation=5)
    again = shop.http().post(
        f"/v1/live-sessions/{session_id}/pins",
        json={"variant_id": shop.variants[1], "flash_price_minor": 1, "allocation": 1},
        headers=shop.auth,
    )
    assert_problem(again, 409, "variant_already_pinned")
    # No regular order can take the allocated units either.
    body = {
        "lines": [{"variant_id": shop.variants[1], "quantity": 1, "unit_price_minor": PRICE}],
        "currency": "USD",
    }
    assert_problem(post_order(shop.http(), shop.auth, body), 409, "insufficient_stock")


def test_ending_a_pin_gives_the_unsold_allocation_back(shop: Shop) -> None:
    session_id = _session(shop)
    pin = _pin(shop, session_id)
    assert _buy(shop, session_id, "b1", quantity=3).status_code == 201
    variant = counters.variant_key(shop.variants[0])
    assert counter(shop.rt, variant) == 30
    rebuild.rebuild_variant(shop.rt, shop.variants[0], only_missing=False)
    assert counter(shop.rt, variant) == 30  # 17 unsold in the allocation + 3 sold, held by their orders

    ended = shop.http().delete(f"/v1/live-sessions/{session_id}/pins/{pin['id']}", headers=shop.auth)

    assert ended.status_code == 200 and ended.get_json()["status"] == "ended"
    assert counter(shop.rt, variant) == 47  # 50 - the 3 sold, which their orders still hold
    assert_problem(_buy(shop, session_id, "b2"), 409, "pin_not_on_sale")
    ended_session = shop.http().post(f"/v1/live-sessions/{session_id}/end", headers=shop.auth).get_json()
    assert ended_session["status"] == "ended"
    assert_problem(
        shop.http().post(f"/v1/live-sessions/{session_id}/start", headers=shop.auth),
        409,
        "live_session_ended",
    )


def test_ending_the_session_ends_its_pins_and_a_cancelled_live_order_goes_back_to_the_pin(shop: Shop) -> None:
    session_id = _session(shop)
    pin = _pin(shop, session_id, allocation=4)
    order = _buy(shop, session_id, "b1", quantity=4).get_json()
    assert_problem(_buy(shop, session_id, "b2"), 409, "sold_out")

    assert shop.http().post(f"/v1/orders/{order['id']}/cancel", headers=shop.auth).status_code == 200
    assert counter(shop.rt, counters.pin_key(pin["id"])) == 4
    assert _buy(shop, session_id, "b2", quantity=4).status_code == 201
    restocked = [e for e in events_of(shop.rt, "live.pin_updated") if e.get("change") == "restocked"]
    assert len(restocked) == 1
    assert len(events_of(shop.rt, "live.sold_out")) == 2  # sold out, restocked, sold out again

    shop.http().post(f"/v1/live-sessions/{session_id}/end", headers=shop.auth)
    got = shop.http().get(f"/v1/live-sessions/{session_id}/pins/{pin['id']}", headers=shop.auth).get_json()
    assert got["status"] == "ended" and got["remaining"] == 0
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 46


def test_another_clients_session_is_not_found(shop: Shop, rt: Runtime) -> None:
    session_id = _session(shop)
    _pin(shop, session_id)
    _other, other_auth = make_client(rt, "other-platform")
    http = shop.http()
    assert_problem(
        http.get(f"/v1/live-sessions/{session_id}", headers=other_auth), 404, "live_session_not_found"
    )
    body = {
        "lines": [{"variant_id": shop.variants[0], "quantity": 1, "unit_price_minor": FLASH}],
        "currency": "USD",
        "buyer": {"ref": "x"},
        "live_session_id": session_id,
    }
    assert_problem(post_order(http, other_auth, body), 404, "live_session_not_found")
    made = http.post(
        "/v1/live-sessions", json={"merchant_id": shop.merchant_id, "title": "x"}, headers=other_auth
    )
    assert_problem(made, 422, "merchant_not_found")
    not_pinned = {**body, "lines": [{"variant_id": shop.variants[1], "quantity": 1, "unit_price_minor": 1}]}
    assert_problem(post_order(http, shop.auth, not_pinned), 422, "variant_not_pinned")


def test_concurrent_buyers_never_exceed_the_allocation_or_their_limit(shop: Shop) -> None:
    session_id = _session(shop)
    pin = _pin(shop, session_id, allocation=15, per_buyer_limit=2, low_stock_threshold=5)
    statuses: Counter[int] = Counter()

    def buyer(index: int) -> None:
        for _ in range(4):
            statuses[_buy(shop, session_id, f"b{index % 10}").status_code] += 1

    in_threads(12, buyer)

    sold = _sold(shop.rt, session_id)
    assert sum(sold.values()) == 15 and statuses[201] == 15
    assert max(sold.values()) <= 2
    assert statuses[409] == 12 * 4 - 15
    assert order_count(shop.rt) == 15
    assert counter(shop.rt, counters.pin_key(pin["id"])) == 0
    with shop.rt.db.session() as session:
        allocation = session.get(Reservation, counters.allocation_id(pin["id"]))
        assert allocation is not None and allocation.quantity == 0
    (low,) = events_of(shop.rt, "live.stock_low")
    (out,) = events_of(shop.rt, "live.sold_out")
    assert low["remaining"] <= 5 and out["remaining"] == 0 and out["pin_id"] == pin["id"]


def test_a_redis_flush_in_the_middle_of_a_sale_never_oversells(shop: Shop) -> None:
    session_id = _session(shop)
    pin = _pin(shop, session_id, allocation=12, per_buyer_limit=3)
    for index in range(3):
        assert _buy(shop, session_id, f"early{index}", quantity=2).status_code == 201

    shop.rt.redis.flushdb()

    statuses: Counter[int] = Counter()

    def buyer(index: int) -> None:
        for _ in range(3):
            statuses[_buy(shop, session_id, f"b{index % 4}").status_code] += 1
        if index == 0:
            shop.rt.redis.flushdb()  # once more while others buy

    in_threads(8, buyer)

    sold = _sold(shop.rt, session_id)
    assert sum(sold.values()) == 12 and statuses[201] == 6
    assert max(sold.values()) <= 3
    assert assert_problem(_buy(shop, session_id, "early0"), 409, "sold_out")
    # The rebuilt counters agree with the database.
    assert counter(shop.rt, counters.pin_key(pin["id"])) == 0
    rebuild.rebuild_variant(shop.rt, shop.variants[0], only_missing=False)
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 38  # 50 - the 12 sold


def test_a_buyer_limit_survives_a_flush(shop: Shop) -> None:
    session_id = _session(shop)
    _pin(shop, session_id, per_buyer_limit=2)
    assert _buy(shop, session_id, "b1", quantity=2).status_code == 201
    shop.rt.redis.flushdb()
    assert_problem(_buy(shop, session_id, "b1"), 409, "buyer_limit_exceeded")


def test_an_idempotent_live_purchase_is_answered_once(shop: Shop) -> None:
    session_id = _session(shop)
    _pin(shop, session_id, allocation=5)
    body = {
        "lines": [{"variant_id": shop.variants[0], "quantity": 1, "unit_price_minor": FLASH}],
        "currency": "USD",
        "buyer": {"ref": "b1"},
        "live_session_id": session_id,
    }
    answers: list[tuple[int, bytes]] = []

    def buy(_index: int) -> None:
        response = post_order(shop.http(), shop.auth, body, key="live-key")
        answers.append((response.status_code, response.get_data()))

    in_threads(5, buy)
    assert {status for status, _ in answers} == {201} and len({data for _, data in answers}) == 1
    assert order_count(shop.rt) == 1

    shop.rt.redis.flushdb()  # marks are rebuilt with the pin's counter
    again = post_order(shop.http(), shop.auth, body, key="live-key")
    assert (again.status_code, again.get_data()) == answers[0]
    other = post_order(shop.http(), shop.auth, {**body, "buyer": {"ref": "b2"}}, key="live-key")
    assert_problem(other, 422, "idempotency_key_reused")
    with shop.rt.db.session() as session:
        assert len(session.scalars(select(OrderLine)).all()) == 1


def test_a_pin_whose_countdown_is_over_is_ended_by_the_reconciler(shop: Shop) -> None:
    session_id = _session(shop)
    pin = _pin(shop, session_id, countdown_seconds=60)
    from datetime import UTC, datetime, timedelta

    from connector.infra.models import LivePin

    with shop.rt.db.session() as session:
        session.execute(update(LivePin).values(countdown_ends_at=datetime.now(UTC) - timedelta(seconds=1)))
    rebuild.rebuild_pin(shop.rt, pin["id"], only_missing=False)
    assert_problem(_buy(shop, session_id, "b1"), 409, "pin_not_on_sale")

    assert reconcile.reconcile(shop.rt)["pins_ended"] == 1
    got = shop.http().get(f"/v1/live-sessions/{session_id}/pins/{pin['id']}", headers=shop.auth).get_json()
    assert got["status"] == "ended"
    assert counter(shop.rt, counters.variant_key(shop.variants[0])) == 50


def _rotate_key(rt: Runtime, client_id: int) -> None:
    from connector.merchants import clients

    with rt.db.session() as session:
        clients.rotate_key(session, client_id)
    assert clients.invalidate_cached_keys(rt.redis)


def test_a_live_purchase_with_a_cached_key_confirms_it_in_its_one_lua_call(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.api import common

    session_id = _session(shop)
    _pin(shop, session_id, per_buyer_limit=1)
    assert _buy(shop, session_id, "b1").status_code == 201  # the key's lookup is cached now
    reads: list[int] = []
    real = common.clients.key_generation
    monkeypatch.setattr(common.clients, "key_generation", lambda redis: reads.append(1) or real(redis))

    assert _buy(shop, session_id, "b2").status_code == 201
    assert_problem(_buy(shop, session_id, "b1"), 409, "buyer_limit_exceeded")
    assert reads == []  # the purchase script compared the key generation itself
    assert_problem(_buy(shop, session_id, ""), 422, "invalid_request")
    assert reads == [1]  # answered without the script: the key was confirmed before the answer left


def test_a_revoked_key_cached_by_live_purchases_is_refused_at_once(shop: Shop) -> None:
    session_id = _session(shop)
    pin = _pin(shop, session_id)
    assert _buy(shop, session_id, "b1").status_code == 201
    assert_problem(_buy(shop, session_id, "b1", price=PRICE), 409, "price_changed")

    _rotate_key(shop.rt, shop.client_id)

    assert _buy(shop, session_id, "b2").status_code == 401  # refused by the script's check, nothing taken
    assert _buy(shop, session_id, "b2", price=PRICE).status_code == 401
    assert _buy(shop, session_id, "").status_code == 401  # refused before the script: confirmed after
    assert _sold(shop.rt, session_id) == Counter({"b1": 1})
    assert counter(shop.rt, counters.pin_key(pin["id"])) == 19
