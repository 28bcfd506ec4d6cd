"""Attribution and the commission ledger through the Platform API, the order push (against the Shopify
emulator) and the worker: an order with a link code or click earns one accrual per line when the store
confirms it, carries the creator into the store's order, and refunds and cancellations add reversals once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from connector.affiliates import clicks
from connector.affiliates.amounts import commission
from connector.infra import runtime
from connector.infra.models import AffiliateClick, CommissionTransition, LiveSession
from connector.sandbox.shopify.app import Server, serve
from tests.helpers import drain
from tests.integration.affiliate_support import (
    buy_in_live_session,
    create_program,
    entries,
    make_link,
    place_order,
    price_of,
    product_of,
    shopify_shop,
)
from tests.integration.checkout_support import Shop, assert_problem, events_of

Runtime = runtime.Runtime


@pytest.fixture
def store() -> Iterator[Server]:
    with serve() as server:
        server.store.seed_catalog(2, 1, available=(100, 100))
        yield server


@pytest.fixture
def shop(rt: Runtime, store: Server) -> Iterator[Shop]:
    with shopify_shop(rt, store) as made:
        yield made


_price, _order, _entries = price_of, place_order, entries


def _click(rt: Runtime, link_id: int, age: timedelta) -> str:
    """A recorded click on `link_id` made `age` ago, with an id signed as the redirect signs them."""
    at = datetime.now(UTC) - age
    click_id = clicks.click_ids(rt).issue(link_id, "click", at)
    with rt.db.session() as session:
        session.add(AffiliateClick(link_id=link_id, click_id=click_id, occurred_at=at))
    return click_id


def test_an_order_with_a_link_code_accrues_per_line_and_tells_the_store(
    rt: Runtime, shop: Shop, store: Server
):
    first, second = shop.variants
    create_program(shop, default_rate_bps=1250, hold_seconds=3600)
    link = make_link(shop, "creator-1", product_of(rt, first))

    order = _order(shop, {first: 2, second: 1}, link_code=link["code"])
    assert order["attribution"] == {"creator_ref": "creator-1", "via": "code"}
    assert _entries(rt) == []  # nothing is earned before the store has the order
    drain(rt)

    entries = _entries(rt)
    assert [(e.kind, e.state, e.creator_ref) for e in entries] == [("accrual", "pending", "creator-1")] * 2
    expected = [commission(2 * _price(rt, first), 1250), commission(_price(rt, second), 1250)]
    assert [e.amount_minor for e in entries] == expected
    assert all(e.link_id == link["id"] and e.currency == "USD" for e in entries)
    assert all(e.hold_until > e.created_at + timedelta(seconds=3500) for e in entries)
    created = events_of(rt, "commission.created")
    assert sorted(e["amount_minor"] for e in created) == sorted(expected)
    (pushed,) = store.store.orders.values()
    assert "creator:creator-1" in pushed.tags
    attributes = {a["key"]: a["value"] for a in pushed.custom_attributes}
    assert attributes["storelink_creator"] == "creator-1"
    assert attributes["storelink_link_code"] == link["code"]
    drain(rt)  # a second run (a replayed job) adds nothing
    assert len(_entries(rt)) == 2


def test_the_last_click_inside_the_window_wins_and_a_stale_one_is_ignored(rt: Runtime, shop: Shop):
    first = shop.variants[0]
    create_program(shop, default_rate_bps=1000, attribution_window_seconds=3600)
    early = make_link(shop, "early", product_of(rt, first))
    late = make_link(shop, "late", product_of(rt, first))
    clk_early = _click(rt, early["id"], timedelta(minutes=30))
    clk_late = _click(rt, late["id"], timedelta(minutes=5))
    clk_stale = _click(rt, late["id"], timedelta(hours=2))

    won = _order(shop, {first: 1}, click_ids=[clk_early, clk_late])
    assert won["attribution"] == {"creator_ref": "late", "via": "click"}
    assert _order(shop, {first: 1}, click_ids=[clk_stale])["attribution"] is None
    assert _order(shop, {first: 1}, click_ids=["clk-unknown"], link_code="nope")["attribution"] is None
    forged = clk_late[:-4] + ("AAAA" if not clk_late.endswith("AAAA") else "BBBB")
    assert _order(shop, {first: 1}, click_ids=[forged])["attribution"] is None
    stale_then_code = _order(shop, {first: 1}, click_ids=[clk_stale], link_code=early["code"])
    assert stale_then_code["attribution"] == {"creator_ref": "early", "via": "code"}
    drain(rt)
    assert {e.creator_ref for e in _entries(rt)} == {"late", "early"}


def test_a_click_through_the_redirect_attributes_before_it_is_written(rt: Runtime, shop: Shop):
    """The click id a visitor brings back from GET /l/<code> credits the order while the click still waits
    in the Redis buffer; the order's lookup writes it, and the later flush adds nothing."""
    first = shop.variants[0]
    create_program(shop, default_rate_bps=1000)
    link = make_link(shop, "creator-1", product_of(rt, first))
    visit = shop.http().get(f"/l/{link['code']}", headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert visit.status_code == 302
    (click_id,) = parse_qs(urlsplit(visit.headers["Location"]).query)["sl_click"]
    with rt.db.session() as session:
        assert (
            session.scalars(select(AffiliateClick).where(AffiliateClick.click_id == click_id)).first() is None
        )

    order = _order(shop, {first: 1}, click_ids=[click_id])
    assert order["attribution"] == {"creator_ref": "creator-1", "via": "click"}
    clicks.flush(rt)
    with rt.db.session() as session:
        rows = session.scalars(select(AffiliateClick).where(AffiliateClick.link_id == link["id"])).all()
    assert [row.click_id for row in rows] == [click_id]


def test_refunds_and_cancellations_reverse_once_pro_rata(rt: Runtime, shop: Shop):
    first, second = shop.variants
    create_program(shop, default_rate_bps=1000)
    link = make_link(shop, "creator-1", product_of(rt, first))
    order = _order(shop, {first: 3, second: 1}, link_code=link["code"])
    drain(rt)
    accrued = sum(e.amount_minor for e in _entries(rt))

    refund = {"refund_id": "r-1", "lines": [{"variant_id": first, "quantity": 1}]}
    path = f"/v1/orders/{order['id']}/refunds"
    made = shop.http().post(path, json=refund, headers=shop.auth)
    assert made.status_code == 201 and made.get_json()["status"] == "refunded"
    assert shop.http().post(path, json=refund, headers=shop.auth).status_code == 200
    reversals = [e for e in _entries(rt) if e.kind == "reversal"]
    assert len(reversals) == 1 and reversals[0].refunded_quantity == 1
    first_net = 3 * _price(rt, first)
    kept_first = round(first_net * 2 / 3)
    assert reversals[0].amount_minor == commission(kept_first, 1000) - commission(first_net, 1000)
    too_many = {"refund_id": "r-2", "lines": [{"variant_id": first, "quantity": 3}]}
    assert_problem(shop.http().post(path, json=too_many, headers=shop.auth), 422, "refund_exceeds_line")
    assert len(events_of(rt, "commission.reversed")) == 1

    cancelled = shop.http().post(f"/v1/orders/{order['id']}/cancel", json={}, headers=shop.auth)
    assert_problem(cancelled, 409, "order_not_cancellable")  # a refunded order is not cancelled
    full = shop.http().post(path, json={"refund_id": "r-3"}, headers=shop.auth)
    assert full.status_code == 201
    assert sum(e.amount_minor for e in _entries(rt)) == 0 < accrued
    with rt.db.session() as session:
        history = session.execute(
            select(CommissionTransition.from_state, CommissionTransition.to_state)
        ).all()
    assert set(history) == {(None, "pending")}


def test_a_cancelled_order_gives_back_all_its_commission(rt: Runtime, shop: Shop):
    first = shop.variants[0]
    create_program(shop, default_rate_bps=2000)
    link = make_link(shop, "creator-1", product_of(rt, first))
    order = _order(shop, {first: 2}, link_code=link["code"])
    drain(rt)
    cancelled = shop.http().post(f"/v1/orders/{order['id']}/cancel", json={}, headers=shop.auth)
    assert cancelled.status_code == 200
    entries = _entries(rt)
    assert [e.kind for e in entries] == ["accrual", "reversal"]
    assert entries[1].cause == "cancel" and sum(e.amount_minor for e in entries) == 0


def test_a_refund_of_an_order_not_yet_confirmed_is_refused(rt: Runtime, shop: Shop):
    order = _order(shop, {shop.variants[0]: 1})
    refused = shop.http().post(
        f"/v1/orders/{order['id']}/refunds", json={"refund_id": "r"}, headers=shop.auth
    )
    assert_problem(refused, 409, "order_not_refundable")
    missing = shop.http().post("/v1/orders/ord_nope/refunds", json={"refund_id": "r"}, headers=shop.auth)
    assert_problem(missing, 404, "order_not_found")


@pytest.mark.parametrize("own_program", [False, True])
def test_a_sale_in_a_creators_live_session_is_the_creators(rt: Runtime, shop: Shop, own_program: bool):
    """Under the session's own program when it names one (the offer's 20%, not the open 15%), else under the
    program that pays the creator."""
    first = shop.variants[0]
    create_program(shop, default_rate_bps=1500)
    program_id = None
    if own_program:
        offer = create_program(
            shop,
            kind="targeted",
            name="Host's drop",
            creator_ref="host",
            product_rates=[{"product_id": product_of(rt, first), "rate_bps": 2000}],
        )
        program_id = offer["id"]
    session_id = buy_in_live_session(shop, first, program_id)
    drain(rt)
    (entry,) = _entries(rt)
    assert (entry.creator_ref, entry.amount_minor, entry.attribution_ref) == (
        "host",
        200 if own_program else 150,
        f"live:{session_id}",
    )


def test_a_live_session_names_only_a_program_its_creator_may_earn_under(shop: Shop):
    rates = [{"product_id": product_of(shop.rt, shop.variants[0]), "rate_bps": 2000}]
    other = create_program(shop, kind="targeted", name="Other's", creator_ref="other", product_rates=rates)
    ended = create_program(shop, kind="targeted", name="Old", creator_ref="host", product_rates=rates)
    assert (
        shop.http()
        .patch(f"/v1/affiliate-programs/{ended['id']}", json={"status": "ended"}, headers=shop.auth)
        .status_code
        == 200
    )

    def session_with(**body: object):
        payload = {"merchant_id": shop.merchant_id, "title": "Drop", "creator_ref": "host", **body}
        return shop.http().post("/v1/live-sessions", json=payload, headers=shop.auth)

    assert_problem(session_with(affiliate_program_id=999_999), 422, "program_not_found")
    assert_problem(session_with(affiliate_program_id=other["id"]), 422, "program_not_for_creator")
    assert_problem(session_with(affiliate_program_id=ended["id"]), 409, "program_ended")
    assert_problem(
        session_with(affiliate_program_id=other["id"], creator_ref=None), 422, "program_needs_creator"
    )
    with shop.rt.db.session() as session:  # nothing half-made
        assert session.scalar(select(func.count()).select_from(LiveSession)) == 0
