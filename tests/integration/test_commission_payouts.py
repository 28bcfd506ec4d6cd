"""Approval after the hold and payouts through the Platform API: approved entries are paid in one
transaction, idempotently by the platform's payout id; unapproved entries, another creator's or another
currency's are refused with nothing marked; a refund after payout is carried into the next payout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connector.affiliates import approval
from connector.infra import runtime
from connector.infra.models import CommissionTransition
from connector.sandbox.shopify.app import Server, serve
from tests.helpers import drain
from tests.integration.affiliate_support import (
    create_program,
    entries,
    make_link,
    place_order,
    product_of,
    shopify_shop,
)
from tests.integration.checkout_support import Shop, assert_problem, events_of

Runtime = runtime.Runtime
HOLD = 3600


@pytest.fixture
def store() -> Iterator[Server]:
    with serve() as server:
        server.store.seed_catalog(2, 1, available=(100, 100))
        yield server


@pytest.fixture
def shop(rt: Runtime, store: Server) -> Iterator[Shop]:
    with shopify_shop(rt, store) as made:
        yield made


def _sold(rt: Runtime, shop: Shop, creator: str = "creator-1", quantity: int = 2) -> dict[str, Any]:
    first, second = shop.variants
    link = make_link(shop, creator, product_of(rt, first), status=None)
    order = place_order(shop, {first: quantity, second: 1}, link_code=link["code"])
    drain(rt)
    return order


def _after_hold() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=HOLD + 60)


def _pay(shop: Shop, **body: Any) -> Any:
    payload = {"platform_payout_id": "po-1", "creator_ref": "creator-1", "currency": "USD", **body}
    return shop.http().post("/v1/payouts", json=payload, headers=shop.auth)


@pytest.fixture
def program(shop: Shop) -> dict[str, Any]:
    return create_program(shop, default_rate_bps=1000, hold_seconds=HOLD)


def test_entries_are_approved_once_their_hold_is_over(rt: Runtime, shop: Shop, program: dict[str, Any]):
    _sold(rt, shop)
    assert approval.approve_due(rt) == 0
    assert approval.approve_due(rt, _after_hold()) == 2
    assert approval.approve_due(rt, _after_hold()) == 0
    assert {e.state for e in entries(rt)} == {"approved"}
    assert len(events_of(rt, "commission.approved")) == 2
    with rt.db.session() as session:
        moves = session.execute(select(CommissionTransition.from_state, CommissionTransition.to_state)).all()
    assert sorted(moves, key=str) == sorted([(None, "pending")] * 2 + [("pending", "approved")] * 2, key=str)


def test_a_cancelled_or_fully_refunded_order_is_never_approved(
    rt: Runtime, shop: Shop, program: dict[str, Any]
):
    cancelled = _sold(rt, shop)
    refunded = _sold(rt, shop, creator="creator-2")
    assert (
        shop.http().post(f"/v1/orders/{cancelled['id']}/cancel", json={}, headers=shop.auth).status_code
        == 200
    )
    full = shop.http().post(
        f"/v1/orders/{refunded['id']}/refunds", json={"refund_id": "r"}, headers=shop.auth
    )
    assert full.status_code == 201
    assert approval.approve_due(rt, _after_hold()) == 0
    assert {e.state for e in entries(rt)} == {"pending"}


def test_a_payout_pays_approved_entries_once(rt: Runtime, shop: Shop, program: dict[str, Any]):
    _sold(rt, shop)
    approval.approve_due(rt, _after_hold())
    ids = [e.public_id for e in entries(rt)]
    total = sum(e.amount_minor for e in entries(rt))

    paid = _pay(shop, entry_ids=ids)
    assert paid.status_code == 201, paid.get_json()
    body = paid.get_json()
    assert (body["total_minor"], body["entry_count"], sorted(body["entry_ids"])) == (total, 2, sorted(ids))
    again = _pay(shop, entry_ids=ids)
    assert again.status_code == 200 and again.get_json() == body
    assert_problem(_pay(shop, entry_ids=ids[:1]), 409, "payout_id_reused")
    assert_problem(_pay(shop, platform_payout_id="po-2", entry_ids=ids), 409, "entry_not_approved")
    assert {e.state for e in entries(rt)} == {"paid"}
    (event,) = events_of(rt, "commission.paid")
    assert event["total_minor"] == total and sorted(event["entry_ids"]) == sorted(ids)


def test_bad_payouts_are_refused_and_mark_nothing(rt: Runtime, shop: Shop, program: dict[str, Any]):
    _sold(rt, shop)
    pending = entries(rt)[0].public_id
    approval.approve_due(rt, _after_hold())
    _sold(rt, shop, creator="creator-1", quantity=3)  # newer entries, still pending
    fresh = [e.public_id for e in entries(rt) if e.state == "pending"]
    assert_problem(_pay(shop, entry_ids=[pending, fresh[0]]), 409, "entry_not_approved")
    assert_problem(_pay(shop, entry_ids=["com_nope"]), 422, "entry_not_found")
    assert_problem(_pay(shop, entry_ids=[pending], currency="EUR"), 422, "currency_mismatch")
    assert_problem(_pay(shop, entry_ids=[pending], creator_ref="someone"), 422, "creator_mismatch")
    assert_problem(
        _pay(shop, entry_ids=[pending], approved_up_to="2026-01-01T00:00:00Z"), 422, "invalid_request"
    )
    assert_problem(
        _pay(shop, creator_ref="nobody", approved_up_to=_after_hold().isoformat()), 422, "nothing_to_pay"
    )
    assert {e.state for e in entries(rt) if e.public_id not in fresh} == {"approved"}
    assert events_of(rt, "commission.paid") == []


def test_a_refund_after_payout_is_carried_into_the_next_payout(
    rt: Runtime, shop: Shop, program: dict[str, Any]
):
    order = _sold(rt, shop, quantity=2)
    approval.approve_due(rt, _after_hold())
    first = _pay(shop, approved_up_to=_after_hold().isoformat())
    assert first.status_code == 201
    paid_before = {e.public_id: (e.amount_minor, e.state) for e in entries(rt)}

    refund = {"refund_id": "late", "lines": [{"variant_id": shop.variants[0], "quantity": 1}]}
    assert (
        shop.http().post(f"/v1/orders/{order['id']}/refunds", json=refund, headers=shop.auth).status_code
        == 201
    )
    (reversal,) = [e for e in entries(rt) if e.kind == "reversal"]
    assert reversal.amount_minor < 0
    assert approval.approve_due(rt, _after_hold() + timedelta(seconds=1)) == 1
    second = _pay(
        shop, platform_payout_id="po-2", approved_up_to=(_after_hold() + timedelta(seconds=5)).isoformat()
    )
    assert second.status_code == 201
    assert second.get_json()["total_minor"] == reversal.amount_minor
    assert {
        e.public_id: (e.amount_minor, e.state) for e in entries(rt) if e.public_id in paid_before
    } == paid_before
    assert sum(e.amount_minor for e in entries(rt)) == first.get_json()["total_minor"] + reversal.amount_minor
