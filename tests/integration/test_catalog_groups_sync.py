"""Tags and collections through real catalog syncs against the store emulators: Shopify (a bulk export, and a
tag changed in the shop reaching Storelink through its signed `products/update` and the paged read it
triggers), a Google-style feed and a Walmart seller. A change of either is a product update (with its
`product.updated` event); an unchanged resync changes nothing; the Platform API reads and filters them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.infra import runtime
from connector.infra.models import EventPayload, InboundEvent
from connector.merchants.records import create_merchant
from connector.sandbox import shopify as shopify_sandbox
from connector.sandbox import walmart as walmart_sandbox
from connector.sandbox.feeds import write_feed
from tests.helpers import ApiClient, ServedApp, build_app, drain, rewrite_feed, sync_now

Runtime = runtime.Runtime


def _merchant(rt: Runtime, client: ApiClient, kind: str, config: dict[str, Any], **credentials: str) -> int:
    with rt.db.session() as session:
        return create_merchant(
            session,
            rt.secrets,
            kind=kind,
            name=f"{kind}-shop",
            config=config,
            credentials=credentials or None,
            platform_client_id=client.id,
        ).id


def _products(http: FlaskClient, client: ApiClient, **query: Any) -> dict[str, dict[str, Any]]:
    """The client's products by external id (one page is enough here)."""
    response = http.get("/v1/products", query_string={"limit": 200, **query}, headers=client.headers)
    assert response.status_code == 200, response.get_json()
    return {p["external_id"]: p for p in response.get_json()["data"]}


def _handles(product: dict[str, Any]) -> list[str]:
    return [c["handle"] for c in product["collections"]]


def _product_events(rt: Runtime, merchant_id: int) -> list[dict[str, Any]]:
    """The data of the merchant's `product.updated` events, in the order they were published."""
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(EventPayload.data)
                .where(EventPayload.merchant_id == merchant_id, EventPayload.type == "product.updated")
                .order_by(EventPayload.occurred_at, EventPayload.id)
            )
        )


def _by_product(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last of `events` of each product, by external id."""
    return {data["product"]["external_id"]: data for data in events}


# --- Shopify ------------------------------------------------------------------------------------------------


@pytest.fixture
def shopify() -> Iterator[shopify_sandbox.Server]:
    with shopify_sandbox.serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(4, 2)
        yield server


def test_a_shopify_bulk_sync_carries_tags_and_collections_and_their_changes(
    rt: Runtime, api_client: ApiClient, shopify: shopify_sandbox.Server
):
    store = shopify.store
    first, second, third, fourth = store.products.values()
    summer = store.add_collection("Summer", products=[first.id, second.id])
    merchant_id = _merchant(
        rt,
        api_client,
        "shopify",
        {"shop": store.shop.myshopify_domain, "base_url": shopify.url},
        access_token="shpat_sandbox",
    )
    assert sync_now(rt, merchant_id).status == "succeeded"
    http = build_app(rt).test_client()

    products = _products(http, api_client)
    assert products[first.id]["tags"] == sorted(first.tags, key=str.casefold)
    assert _handles(products[first.id]) == _handles(products[second.id]) == ["summer"]
    assert products[third.id]["collections"] == []
    (listed,) = http.get("/v1/collections", headers=api_client.headers).get_json()["data"]
    assert listed == {
        "id": listed["id"],
        "merchant_id": merchant_id,
        "external_id": summer.id,
        "handle": "summer",
        "title": "Summer",
    }
    assert products[first.id]["collections"] == [listed]
    in_summer = _products(http, api_client, collection_id=listed["id"])
    assert set(in_summer) == {first.id, second.id}
    tag = first.tags[0]
    tagged = {p.id for p in store.products.values() if tag in p.tags}
    assert set(_products(http, api_client, tag=tag.upper())) == tagged

    # In the shop: a tag added to the third product, the fourth put in the collection, the first taken out,
    # and the collection renamed.
    seen = len(_product_events(rt, merchant_id))
    store.update_product(third.id, tags=[*third.tags, "Gift Ideas"])
    store.collect(summer.id, [fourth.id])
    store.uncollect(summer.id, [first.id])
    summer.title = "Summer 26"
    run = sync_now(rt, merchant_id)

    assert run.status == "succeeded" and run.updated == 4 * 2 and run.created == 0
    changed = _by_product(_product_events(rt, merchant_id)[seen:])
    assert set(changed) == {first.id, second.id, third.id, fourth.id}
    assert "Gift Ideas" in changed[third.id]["product"]["tags"]
    assert changed[fourth.id]["product"]["collections"] == [
        {"external_id": summer.id, "handle": "summer", "title": "Summer 26"}
    ]
    assert changed[first.id]["product"]["collections"] == []
    products = _products(http, api_client)
    assert "Gift Ideas" in products[third.id]["tags"]
    assert [c["title"] for c in products[fourth.id]["collections"]] == ["Summer 26"]
    assert set(_products(http, api_client, collection_id=listed["id"])) == {second.id, fourth.id}
    assert set(_products(http, api_client, tag="gift ideas")) == {third.id}

    unchanged = sync_now(rt, merchant_id)
    assert unchanged.updated == 0 and unchanged.events_emitted == 0


def test_a_tag_changed_in_shopify_arrives_with_its_products_update_webhook(
    rt: Runtime, api_client: ApiClient, shopify: shopify_sandbox.Server
):
    store = shopify.store
    merchant_id = _merchant(
        rt,
        api_client,
        "shopify",
        {"shop": store.shop.myshopify_domain, "base_url": shopify.url, "bulk": False},
        access_token="shpat_sandbox",
        client_secret=shopify.emulator.client.client_secret,
    )
    assert sync_now(rt, merchant_id).status == "succeeded"  # catalog pages, not a bulk export
    served = ServedApp(rt)
    try:
        shopify.emulator.webhooks.subscribe("products/update", f"{served.url}/webhooks/shopify")
        target = next(iter(store.products.values()))
        store.update_product(target.id, tags=["Summer", "linen"])
        assert shopify.emulator.webhooks.flush(10)
        drain(rt)
    finally:
        served.close()

    with rt.db.session() as session:
        (delivery,) = session.scalars(select(InboundEvent).where(InboundEvent.merchant_id == merchant_id))
        assert delivery.status == "processed", delivery.error
        assert json.loads(delivery.raw_body)["tags"] == "Summer, linen"  # as Shopify's REST bodies spell them
    product = _products(build_app(rt).test_client(), api_client)[target.id]
    assert product["tags"] == ["linen", "Summer"]
    assert _by_product(_product_events(rt, merchant_id))[target.id]["product"]["tags"] == ["linen", "Summer"]


# --- a feed -------------------------------------------------------------------------------------------------


def test_a_feed_sync_reads_labels_and_categories_and_a_dry_run_lists_their_changes(
    rt: Runtime, api_client: ApiClient, tmp_path: Path
):
    feed = write_feed(tmp_path / "feed.csv", 12, variants_per_product=3, labels=True)
    merchant_id = _merchant(rt, api_client, "feed", {"url": str(feed)})
    assert sync_now(rt, merchant_id).created == 12
    http = build_app(rt).test_client()
    products = _products(http, api_client)
    assert products["P-000001"]["tags"] == ["odd"] and products["P-000002"]["tags"] == ["even"]
    assert _handles(products["P-000001"]) == ["apparel-outerwear"]
    assert products["P-000001"]["collections"][0]["external_id"] == "product-type:apparel-outerwear"

    def relabel(_: int, row: dict[str, str]) -> dict[str, str]:
        if row["item_group_id"] == "P-000003":
            row["custom_label_0"], row["product_type"] = "clearance", "Home > Kitchen"
        return row

    rewrite_feed(feed, relabel)
    dry = sync_now(rt, merchant_id, dry_run=True)
    assert dry.updated == 3
    (change,) = [d for d in dry.diff if d.get("product") == "P-000003"]
    assert change["changes"] == {
        "tags": [["odd"], ["clearance"]],
        "collections": [["Toys"], ["Home > Kitchen"]],
    }
    assert _products(http, api_client)["P-000003"]["tags"] == ["odd"]  # a dry run writes nothing

    run = sync_now(rt, merchant_id)
    assert run.updated == 3 and run.events_emitted == 1
    product = _products(http, api_client)["P-000003"]
    assert product["tags"] == ["clearance"] and _handles(product) == ["home-kitchen"]
    assert set(_products(http, api_client, tag="Clearance")) == {"P-000003"}


# --- Walmart ------------------------------------------------------------------------------------------------


def test_a_walmart_items_shelf_and_product_type_are_synced_as_collections(rt: Runtime, api_client: ApiClient):
    with walmart_sandbox.serve() as server:
        server.store.seed_catalog(4)
        emulator = server.emulator
        merchant_id = _merchant(
            rt,
            api_client,
            "walmart",
            {"client_id": emulator.client_id, "base_url": server.url},
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
        )
        assert sync_now(rt, merchant_id).created == 4
        http = build_app(rt).test_client()
        first = _products(http, api_client)["WM-SKU-000000"]
        assert [c["title"] for c in first["collections"]] == [
            "Clothing > Men > Mens Coats & Jackets",
            "Outerwear Coats, Jackets & Vests",
        ]
        assert first["tags"] == []

        server.store.set_category("WM-SKU-000000", shelf=["Home Page", "Clothing", "Women"])
        run = sync_now(rt, merchant_id)

    assert run.updated == 1
    moved = _products(http, api_client)["WM-SKU-000000"]
    assert _handles(moved) == ["clothing-women", "outerwear-coats-jackets-vests"]
    listed = http.get(
        "/v1/collections", query_string={"merchant_id": merchant_id}, headers=api_client.headers
    )
    handles = {c["handle"] for c in listed.get_json()["data"]}
    assert {"clothing-women", "clothing-men-mens-coats-jackets", "cookware-sets"} <= handles
