"""Showcases over HTTP: hand lists with live price and stock, ETag and 304, paging, hand edits, and the problem
codes of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from connector.infra import runtime
from connector.infra.models import InventoryLevel, Product, Variant
from connector.showcases import events as showcase_events_module
from connector.showcases.showcases import MAX_ITEMS
from connector.worker import build_worker
from tests.integration.affiliate_support import add_product, product_of
from tests.integration.checkout_support import (
    Shop,
    add_merchant,
    assert_problem,
    make_shop,
    order_body,
    post_order,
)
from tests.integration.showcase_support import create, outlive_the_cache, showcase_events, view

Runtime = runtime.Runtime


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(5, 3), prices=(2_000, 1_500))


def test_a_hand_showcase_shows_live_price_sale_price_and_sellable_stock(rt: Runtime, shop: Shop):
    mug = product_of(rt, shop.variants[0])
    cap, _ = add_product(rt, shop, 900, "cap")
    made = create(
        shop.http(), shop.auth, owner_kind="merchant", merchant_id=shop.merchant_id, product_ids=[cap, mug]
    )
    assert [p["product_id"] for p in made["placed"]] == [cap, mug]

    body = view(shop.http(), shop.auth, made["id"])
    assert [i["product_id"] for i in body["items"]] == [cap, mug]
    first, second = body["items"]
    assert (
        first["sellable"] is None
        and first["available"]
        and first["price"] == {"amount_minor": 900, "currency": "USD"}
    )
    assert (
        second["sellable"] == 8 and second["price"]["amount_minor"] == 1_500 and second["sale_price"] is None
    )
    assert second["link"] is None

    with rt.db.session() as session:  # the cheaper variant goes on sale: compare-at above its price
        session.execute(update(Variant).where(Variant.id == shop.variants[1]).values(compare_at_minor=1_800))
    outlive_the_cache()
    second = view(shop.http(), shop.auth, made["id"])["items"][1]
    assert second["price"]["amount_minor"] == 1_800 and second["sale_price"]["amount_minor"] == 1_500

    # A checkout hold counts at once: sellable is the checkout definition.
    response = post_order(shop.http(), shop.auth, order_body(shop.variants[0], 2_000, quantity=2))
    assert response.status_code in (201, 202), response.get_json()
    outlive_the_cache()
    assert view(shop.http(), shop.auth, made["id"])["items"][1]["sellable"] == 6


def test_etag_and_if_none_match_answer_304_until_stock_changes(rt: Runtime, shop: Shop):
    mug = product_of(rt, shop.variants[0])
    made = create(
        shop.http(), shop.auth, owner_kind="merchant", merchant_id=shop.merchant_id, product_ids=[mug]
    )
    url = f"/v1/showcases/{made['id']}"
    first = shop.http().get(url, headers=shop.auth)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "private, max-age=2"
    etag = first.headers["ETag"]
    again = shop.http().get(url, headers={**shop.auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag

    with rt.db.session() as session:
        session.execute(
            update(InventoryLevel).where(InventoryLevel.variant_id == shop.variants[0]).values(available=1)
        )
    outlive_the_cache()
    changed = shop.http().get(url, headers={**shop.auth, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json()["items"][0]["sellable"] == 4


def test_out_of_stock_items_hide_or_show_sold_out_per_showcase(rt: Runtime, shop: Shop):
    mug = product_of(rt, shop.variants[0])
    cap, _ = add_product(rt, shop, 900, "cap")
    hide = create(
        shop.http(), shop.auth, owner_kind="merchant", merchant_id=shop.merchant_id, product_ids=[mug, cap]
    )
    sold = create(
        shop.http(),
        shop.auth,
        owner_kind="merchant",
        merchant_id=shop.merchant_id,
        handle="sold",
        out_of_stock="sold_out",
        product_ids=[mug, cap],
    )
    with rt.db.session() as session:
        session.execute(
            update(InventoryLevel).where(InventoryLevel.merchant_id == shop.merchant_id).values(available=0)
        )

    assert [i["product_id"] for i in view(shop.http(), shop.auth, hide["id"])["items"]] == [cap]
    items = view(shop.http(), shop.auth, sold["id"])["items"]
    assert [(i["product_id"], i["sold_out"], i["sellable"]) for i in items] == [
        (mug, True, 0),
        (cap, False, None),
    ]


def test_hand_edits_insert_move_remove_and_page_with_a_cursor(rt: Runtime, shop: Shop):
    products = [add_product(rt, shop, 100 + n, f"p{n}")[0] for n in range(5)]
    made = create(
        shop.http(), shop.auth, owner_kind="merchant", merchant_id=shop.merchant_id, product_ids=products[:3]
    )
    sid = made["id"]
    http = shop.http()
    response = http.post(
        f"/v1/showcases/{sid}/items", json={"product_ids": products[3:], "position": 1}, headers=shop.auth
    )
    assert response.status_code == 200, response.get_json()
    order = [products[0], products[3], products[4], products[1], products[2]]
    assert [p["product_id"] for p in response.get_json()["placed"]] == order
    moved = http.patch(f"/v1/showcases/{sid}/items/{products[0]}", json={"position": 4}, headers=shop.auth)
    assert [p["product_id"] for p in moved.get_json()["placed"]] == [*order[1:], products[0]]
    removed = http.delete(f"/v1/showcases/{sid}/items/{products[3]}", headers=shop.auth)
    assert [p["product_id"] for p in removed.get_json()["placed"]] == [
        products[4],
        products[1],
        products[2],
        products[0],
    ]
    assert_problem(
        http.delete(f"/v1/showcases/{sid}/items/{products[3]}", headers=shop.auth), 404, "item_not_found"
    )

    first = http.get(f"/v1/showcases/{sid}", query_string={"limit": 3}, headers=shop.auth).get_json()
    assert len(first["items"]) == 3 and first["total"] == 4 and first["next_cursor"]
    assert [i["position"] for i in view(http, shop.auth, sid, limit=3)["items"]] == [0, 1, 2, 3]

    # Each hand edit that changed what a viewer sees was announced once.
    kinds = [kind for kind, _ in showcase_events(rt, sid)]
    assert kinds == ["showcase.updated"] * 4
    _, last = showcase_events(rt, sid)[-1]
    assert last["removed"] == [products[3]] and last["added"] == [] and last["count"] == 4

    assert http.delete(f"/v1/showcases/{sid}", headers=shop.auth).status_code == 204
    assert_problem(http.get(f"/v1/showcases/{sid}", headers=shop.auth), 404, "showcase_not_found")


def test_bad_input_is_refused_with_stable_codes(rt: Runtime, shop: Shop, tmp_path: Path):
    http, auth = shop.http(), shop.auth
    mine = product_of(rt, shop.variants[0])
    other_merchant, other_variants = add_merchant(rt, tmp_path, shop.client_id, name="second")
    theirs = product_of(rt, other_variants[0])
    stranger = make_shop(rt, tmp_path, name="stranger")
    foreign = product_of(rt, stranger.variants[0])
    base = {"owner_kind": "merchant", "merchant_id": shop.merchant_id}

    for body, code in [
        ({"product_ids": [999_999]}, "product_not_found"),
        ({"product_ids": [foreign]}, "product_not_found"),
        ({"product_ids": [theirs]}, "product_not_owned"),
        ({"rule": {"tag": ""}}, "invalid_rule"),
        ({"rule": {"collection": 5}}, "invalid_rule"),
        ({"rule": {"tag": "a\x00b"}}, "invalid_rule"),
        ({"rule": {"vendor": "Acme\x00"}}, "invalid_rule"),
        ({"rule": {"tags": ["summer"]}}, "invalid_rule"),
        ({"rule": {"sort": "random"}}, "invalid_rule"),
        ({"rule": {"min_price_minor": 10, "max_price_minor": 5}}, "invalid_rule"),
        ({"max_items": 501}, "too_many_items"),
        ({"max_items": 0}, "invalid_showcase"),
        ({"handle": "Not A Handle"}, "invalid_showcase"),
        ({"merchant_id": stranger.merchant_id}, "merchant_not_found"),
        ({"owner_kind": "creator", "merchant_id": None}, "invalid_showcase"),
        ({"product_ids": [mine, mine]}, "invalid_showcase"),
        ({"title": 5}, "invalid_request"),
    ]:
        assert_problem(
            http.post("/v1/showcases", json={"title": "x", "handle": "x", **base, **body}, headers=auth),
            422,
            code,
        )

    made = create(http, auth, **base, product_ids=[mine])
    assert_problem(
        http.post("/v1/showcases", json={"title": "x", "handle": "spring", **base}, headers=auth),
        409,
        "handle_taken",
    )
    many = list(range(1, MAX_ITEMS + 2))
    assert_problem(
        http.post(f"/v1/showcases/{made['id']}/items", json={"product_ids": many}, headers=auth),
        422,
        "too_many_items",
    )
    assert_problem(
        stranger.http().get(f"/v1/showcases/{made['id']}", headers=stranger.auth), 404, "showcase_not_found"
    )
    assert other_merchant != shop.merchant_id
    assert [p["product_id"] for p in view(http, auth, made["id"])["placed"]] == [mine]  # nothing half-written


def _drain_events(rt: Runtime) -> None:
    """The events queue only: refresh jobs, not the pushes of orders to a store nobody runs."""
    build_worker(rt, ["events"]).work(burst=True, with_scheduler=False)


def test_holds_taken_and_given_back_and_silent_changes_are_announced(rt: Runtime, tmp_path: Path):
    shop = make_shop(rt, tmp_path, stock=(2,), prices=(1_000,))
    mug = product_of(rt, shop.variants[0])
    sid = create(
        shop.http(), shop.auth, owner_kind="merchant", merchant_id=shop.merchant_id, product_ids=[mug]
    )["id"]

    order = post_order(shop.http(), shop.auth, order_body(shop.variants[0], 1_000, quantity=2)).get_json()
    _drain_events(rt)
    assert view(shop.http(), shop.auth, sid)["items"] == []
    assert showcase_events(rt, sid)[-1][1]["removed"] == [mug]

    assert shop.http().post(f"/v1/orders/{order['id']}/cancel", json={}, headers=shop.auth).status_code == 200
    _drain_events(rt)
    assert showcase_events(rt, sid)[-1][1]["added"] == [{"product_id": mug, "position": 0}]

    # A change no event announces (here, a level written behind the service's back) is caught by the sweep.
    with rt.db.session() as session:
        session.execute(
            update(InventoryLevel).where(InventoryLevel.variant_id == shop.variants[0]).values(available=0)
        )
    _drain_events(rt)
    assert len(showcase_events(rt, sid)) == 3
    assert showcase_events_module.sweep() >= 1
    _drain_events(rt)
    assert [kind for kind, _ in showcase_events(rt, sid)] == ["showcase.updated"] * 4
    assert showcase_events(rt, sid)[-1][1]["removed"] == [mug]


def test_best_sellers_come_first_by_storelinks_own_orders(rt: Runtime, shop: Shop):
    mug = product_of(rt, shop.variants[0])
    cap, cap_variant = add_product(rt, shop, 900, "cap")
    hat, _ = add_product(rt, shop, 700, "hat")
    for quantity in (2, 1):
        response = post_order(shop.http(), shop.auth, order_body(cap_variant, 900, quantity=quantity))
        assert response.status_code in (201, 202), response.get_json()
    response = post_order(shop.http(), shop.auth, order_body(shop.variants[1], 1_500))
    assert response.status_code in (201, 202), response.get_json()

    made = create(
        shop.http(),
        shop.auth,
        owner_kind="merchant",
        merchant_id=shop.merchant_id,
        rule={"sort": "best_selling"},
    )
    assert [i["product_id"] for i in view(shop.http(), shop.auth, made["id"])["items"]] == [cap, mug, hat]


def test_archived_products_drop_out_and_come_back_when_restored(rt: Runtime, shop: Shop):
    mug = product_of(rt, shop.variants[0])
    cap, _ = add_product(rt, shop, 900, "cap")
    made = create(
        shop.http(),
        shop.auth,
        owner_kind="merchant",
        merchant_id=shop.merchant_id,
        out_of_stock="sold_out",
        product_ids=[mug, cap],
    )
    for status, shown in (("archived", [cap]), ("deleted", [cap]), ("active", [mug, cap])):
        with rt.db.session() as session:
            session.execute(update(Product).where(Product.id == mug).values(status=status))
        outlive_the_cache()
        assert [i["product_id"] for i in view(shop.http(), shop.auth, made["id"])["items"]] == shown, status


def test_a_hand_list_is_pinned_above_a_rule_or_placed_below_it(rt: Runtime, shop: Shop):
    cheap, _ = add_product(rt, shop, 100, "cheap")
    dear, _ = add_product(rt, shop, 9_000, "dear")
    mid, _ = add_product(rt, shop, 5_000, "mid")
    mug = product_of(rt, shop.variants[0])
    made = create(
        shop.http(),
        shop.auth,
        owner_kind="merchant",
        merchant_id=shop.merchant_id,
        rule={"sort": "price_asc"},
        product_ids=[dear],
    )
    response = shop.http().post(
        f"/v1/showcases/{made['id']}/items", json={"product_ids": [cheap], "pinned": False}, headers=shop.auth
    )
    assert response.status_code == 200, response.get_json()

    items = view(shop.http(), shop.auth, made["id"])["items"]
    # dear pinned on top; the rule's products by price, those placed by hand left out; cheap placed below.
    assert [i["product_id"] for i in items] == [dear, mug, mid, cheap]
    assert [(i["pinned"], i["placed"]) for i in items] == [
        (True, True),
        (False, False),
        (False, False),
        (False, True),
    ]
    assert [i["position"] for i in items] == [0, 1, 2, 3]
