"""Per-collection commission rates, through the real path: the Shopify emulator's collections synced into the
catalog, programs made and changed over the Platform API, orders placed with a creator's link code, pushed to
the emulated shop and accrued when it confirms them. Precedence: the creator's targeted offer, then the
product's rate, then the best rate of a collection it is in, then the default."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connector.affiliates.amounts import commission
from connector.infra import runtime
from connector.infra.models import CommissionEntry, OrderLine, Variant
from connector.merchants.records import create_merchant
from connector.orders import push
from connector.sandbox.shopify.app import Server, serve
from tests.helpers import assert_problem, drain, sync_now
from tests.integration.affiliate_support import (
    buy_in_live_session,
    create_program,
    make_link,
    place_order,
    price_of,
)
from tests.integration.checkout_support import Shop, build_app, make_client

Runtime = runtime.Runtime


@pytest.fixture
def store() -> Iterator[Server]:
    """Three products of one variant: the first two in Summer, the second also in Sale."""
    with serve() as server:
        first, second, _ = server.store.seed_catalog(3, 1, available=(100, 100))
        server.store.add_collection("Summer", products=[first.id, second.id])
        server.store.add_collection("Sale", products=[second.id])
        yield server


@pytest.fixture
def shop(rt: Runtime, store: Server) -> Iterator[Shop]:
    """The emulated shop as a merchant of a platform client, its catalog (and collections) synced."""
    push._adapters.clear()
    client_id, auth = make_client(rt, "platform")
    with rt.db.session() as session:
        merchant_id = create_merchant(
            session,
            rt.secrets,
            kind="shopify",
            name="shop",
            config={"shop": store.store.shop.myshopify_domain, "base_url": store.url},
            credentials={"access_token": "shpat_sandbox"},
            platform_client_id=client_id,
        ).id
    assert sync_now(rt, merchant_id).status == "succeeded"
    with rt.db.session() as session:
        by_ref = {ext: vid for ext, vid in session.execute(select(Variant.external_id, Variant.id))}
    variants = [by_ref[p.variants[0].id] for p in store.store.products.values()]
    try:
        yield Shop(rt, build_app(rt), client_id, auth, merchant_id, variants)
    finally:
        push._adapters.clear()


def _collections(shop: Shop) -> dict[str, int]:
    response = shop.http().get("/v1/collections", headers=shop.auth)
    return {c["handle"]: c["id"] for c in response.get_json()["data"]}


def _product(shop: Shop, variant_id: int) -> int:
    with shop.rt.db.session() as session:
        found: int = session.scalar(select(Variant.product_id).where(Variant.id == variant_id))
        return found


def _earned(rt: Runtime, creator: str) -> dict[int, list[tuple[int, int]]]:
    """(rate, amount) of the creator's accruals by variant, in order."""
    with rt.db.session() as session:
        rows = session.execute(
            select(OrderLine.variant_id, CommissionEntry.rate_bps, CommissionEntry.amount_minor)
            .join(OrderLine, OrderLine.id == CommissionEntry.order_line_id)
            .where(CommissionEntry.creator_ref == creator, CommissionEntry.kind == "accrual")
            .order_by(CommissionEntry.id)
        )
        found: dict[int, list[tuple[int, int]]] = {}
        for variant_id, rate, amount in rows:
            found.setdefault(variant_id, []).append((rate, amount))
        return found


def test_collection_rates_rank_below_product_rates_and_targeted_offers(rt: Runtime, shop: Shop):
    first, second, third = shop.variants
    groups = _collections(shop)
    program = create_program(
        shop,
        default_rate_bps=1000,
        product_rates=[{"product_id": _product(shop, first), "rate_bps": 3000}],
        collection_rates=[
            {"collection_id": groups["summer"], "rate_bps": 1500},
            {"collection_id": groups["sale"], "rate_bps": 2500},
        ],
    )
    assert program["collection_rates"] == [
        {"collection_id": groups["summer"], "handle": "summer", "title": "Summer", "rate_bps": 1500},
        {"collection_id": groups["sale"], "handle": "sale", "title": "Sale", "rate_bps": 2500},
    ]
    link = make_link(shop, "creator-1", _product(shop, third))

    order = place_order(shop, {first: 1, second: 2, third: 1}, link_code=link["code"])
    assert order["attribution"] == {"creator_ref": "creator-1", "via": "code"}
    drain(rt)  # pushed to the shop, confirmed, accrued

    price = {v: price_of(rt, v) for v in shop.variants}
    assert _earned(rt, "creator-1") == {
        first: [(3000, commission(price[first], 3000))],  # its own rate, above Summer's
        second: [(2500, commission(2 * price[second], 2500))],  # the best of Summer and Sale
        third: [(1000, commission(price[third], 1000))],  # in no collection: the default
    }

    # Sale's rate removed: the second product earns Summer's.
    changed = shop.http().patch(
        f"/v1/affiliate-programs/{program['id']}",
        json={"collection_rates": [{"collection_id": groups["sale"], "rate_bps": None}]},
        headers=shop.auth,
    )
    assert changed.status_code == 200, changed.get_json()
    assert [r["handle"] for r in changed.get_json()["collection_rates"]] == ["summer"]
    place_order(shop, {second: 1}, link_code=link["code"])
    drain(rt)
    assert _earned(rt, "creator-1")[second][-1] == (1500, commission(price[second], 1500))

    # A targeted offer's collection rate wins over the open program's product rate, for that creator only.
    create_program(
        shop,
        kind="targeted",
        creator_ref="creator-2",
        name="For creator 2",
        collection_rates=[{"collection_id": groups["summer"], "rate_bps": 4000}],
    )
    offered = make_link(shop, "creator-2", _product(shop, first))
    place_order(shop, {first: 1, third: 1}, link_code=offered["code"])
    place_order(shop, {first: 1}, link_code=link["code"])
    drain(rt)
    assert _earned(rt, "creator-2") == {
        first: [(4000, commission(price[first], 4000))],
        third: [(1000, commission(price[third], 1000))],  # outside the offer: the open program's default
    }
    assert _earned(rt, "creator-1")[first][-1] == (3000, commission(price[first], 3000))


def test_bad_collection_rates_are_refused_and_support_sees_them(
    rt: Runtime, shop: Shop, cli: Callable[..., str]
):
    groups = _collections(shop)
    base = {"merchant_id": shop.merchant_id, "kind": "open", "name": "Everyone", "default_rate_bps": 1000}

    def post(**body: Any) -> Any:
        return shop.http().post("/v1/affiliate-programs", json={**base, **body}, headers=shop.auth)

    refused = assert_problem(
        post(collection_rates=[{"collection_id": 999_999, "rate_bps": 1500}]), 422, "collection_not_found"
    )
    assert refused["errors"] == [
        {
            "field": "collection_rates.999999",
            "message": f"collection 999999 is not a collection of merchant {shop.merchant_id}",
        }
    ]
    assert_problem(
        post(collection_rates=[{"collection_id": groups["summer"], "rate_bps": 9000}]),
        422,
        "rate_out_of_range",
    )
    twice = [{"collection_id": groups["summer"], "rate_bps": 1500}] * 2
    assert_problem(post(collection_rates=twice), 422, "invalid_request")
    offer = {**base, "kind": "targeted", "creator_ref": "c", "default_rate_bps": None}
    assert_problem(
        shop.http().post("/v1/affiliate-programs", json=offer, headers=shop.auth), 422, "invalid_program"
    )

    made = create_program(
        shop, collection_rates=[{"collection_id": groups["sale"], "rate_bps": 2200}], default_rate_bps=900
    )
    assert_problem(
        shop.http().patch(
            f"/v1/affiliate-programs/{made['id']}",
            json={"collection_rates": [{"collection_id": 999_999, "rate_bps": 1000}]},
            headers=shop.auth,
        ),
        422,
        "collection_not_found",
    )
    shown = cli("programs", "show", str(made["id"]))
    assert "collection rates" in shown and "sale" in shown and "2200" in shown
    as_json = json.loads(cli("programs", "show", str(made["id"]), "--json"))
    assert as_json["collection_rates"] == [
        {"collection_id": groups["sale"], "handle": "sale", "title": "Sale", "rate_bps": 2200}
    ]


def test_a_live_sessions_program_pays_its_collection_rate(rt: Runtime, shop: Shop):
    """A sale in a live session earns under the session's program: its collection rate, above its default."""
    second = shop.variants[1]  # in Summer and Sale
    groups = _collections(shop)
    program = create_program(
        shop, default_rate_bps=1000, collection_rates=[{"collection_id": groups["sale"], "rate_bps": 2500}]
    )
    buy_in_live_session(shop, second, program["id"])
    drain(rt)
    assert _earned(rt, "host") == {second: [(2500, commission(2 * 500, 2500))]}
