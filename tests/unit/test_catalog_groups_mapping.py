"""Tags and collections as each store's wire format carries them, normalized alike: Shopify's `Product.tags`
and `collections` (catalog pages and bulk JSONL, against the vendored 2026-10 schema and the emulator), a
Walmart item's shelf path and product type (no tags: its item API has none), a feed's Google-style
`product_type`, custom labels, `tags` and `collections` columns."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from graphql import OperationDefinitionNode, parse
from werkzeug.test import Client

from adapters.feed import mapper as feed_mapper
from adapters.shopify import const, queries
from adapters.shopify import mapper as shopify_mapper
from adapters.walmart import mapper as walmart_mapper
from connector.domain.catalog import (
    MAX_TAGS,
    CollectionRef,
    Product,
    clean_collections,
    clean_tags,
    handle_of,
    tag_key,
)
from connector.sandbox.shopify import GRAPHQL_PATH, ShopifyEmulator, payloads
from connector.sandbox.shopify.cost import MAX_QUERY_COST, CostCalculator
from connector.sandbox.shopify.schema import load_schema
from tests.unit.test_shopify_mapper import P1, P2, assemble, bulk_line, product_node, variant_node

WIDE = "\uff33\uff35\uff2d\uff2d\uff25\uff32"
"""SUMMER in full-width letters."""
SUMMER = CollectionRef("gid://shopify/Collection/7", "summer", "Summer")
SALE = CollectionRef("gid://shopify/Collection/8", "sale", "Sale")


def _collection(ref: CollectionRef) -> dict[str, str]:
    return {"id": ref.external_id, "handle": ref.handle, "title": ref.title}


# --- the domain -----------------------------------------------------------------------------------------------


def test_tags_are_trimmed_deduplicated_by_case_and_ordered():
    assert clean_tags([" Summer ", "summer", "", "Linen", 5, WIDE, "a  b"]) == (
        "a b",
        "Linen",
        "Summer",
    )
    assert tag_key(WIDE + " ") == tag_key("summer") == "summer"
    assert len(clean_tags(f"t{n:04d}" for n in range(MAX_TAGS + 10))) == MAX_TAGS
    assert clean_tags(["x" * 300]) == ("x" * 255,)


def test_collections_keep_store_order_one_per_id_and_get_a_handle():
    untitled = CollectionRef("cat:1", "", "Home > Kitchen & Dining")
    assert clean_collections([SALE, SUMMER, SALE, untitled, CollectionRef("", "x", "X")]) == (
        SALE,
        SUMMER,
        CollectionRef("cat:1", "home-kitchen-dining", "Home > Kitchen & Dining"),
    )
    assert handle_of("Café Crème") == "café-crème" and handle_of("  --  ") == ""


def test_tags_and_collections_are_part_of_a_products_fingerprint_only_when_present():
    plain = Product("p1", "Tee", ())
    tagged = Product("p1", "Tee", (), tags=("summer",))
    grouped = Product("p1", "Tee", (), collections=(SUMMER,))
    renamed = Product(
        "p1", "Tee", (), collections=(CollectionRef(SUMMER.external_id, "summer", "Summer 26"),)
    )
    hashes = {p.content_hash() for p in (plain, tagged, grouped, renamed)}
    assert len(hashes) == 4
    # A product without any hashes as products did before they carried tags and collections (the digest
    # stored by the releases before), so adding them does not mark every stored product changed.
    assert plain.content_hash() == "3744a78e49a24a35909a79756855c159"


# --- Shopify --------------------------------------------------------------------------------------------------


def test_a_catalog_page_product_carries_its_tags_and_first_collections():
    many = [
        _collection(CollectionRef(f"gid://shopify/Collection/{n}", f"c{n}", f"C {n}"))
        for n in range(100, 140)
    ]
    node = product_node(
        tags=["summer", "Linen", "summer "],
        collections={"nodes": [_collection(SALE), {"id": "gid://shopify/Product/3"}, *many]},
        variants={"nodes": [variant_node(11)]},
    )
    product = shopify_mapper.page_product(node, "USD").product
    assert product.tags == ("Linen", "summer")
    assert product.collections[0] == SALE
    assert len(product.collections) == const.MAX_COLLECTIONS
    assert shopify_mapper.tags("summer, Linen,  ,sale") == ("Linen", "sale", "summer")  # a webhook's string


def test_bulk_collection_lines_belong_to_their_product_before_or_after_it():
    lines = [
        bulk_line(_collection(SUMMER), P1),  # before its product (ungrouped output)
        bulk_line(product_node(P1, tags=["b", "a"])),
        bulk_line(variant_node(11), P1),
        bulk_line(product_node(P2)),
        bulk_line(_collection(SALE), P1),
        bulk_line(_collection(SALE), P2),
        bulk_line({"id": "gid://shopify/Collection/9", "title": "No parent"}),
    ]
    products, assembler = assemble(lines)
    by_id = {p.external_id: p for p in products}
    assert by_id[P1].tags == ("a", "b") and by_id[P1].collections == (SUMMER, SALE)
    assert by_id[P2].tags == () and by_id[P2].collections == (SALE,)
    assert assembler.errors == [] and assembler.ignored == {"Collection": 1}


def test_the_documents_ask_for_tags_and_collections_within_shopifys_limits():
    for document in (queries.BULK_CATALOG, queries.CATALOG_PAGE):
        assert "tags" in document and "collections" in document and "handle" in document
    assert f"collections(first: {const.MAX_COLLECTIONS})" in queries.CATALOG_PAGE
    page = next(d for d in parse(queries.CATALOG_PAGE).definitions if isinstance(d, OperationDefinitionNode))
    variables = {"first": const.PRODUCTS_PER_PAGE, "after": None, "query": None}
    assert CostCalculator(load_schema(), {}, variables).operation_cost(page) <= MAX_QUERY_COST


def test_the_emulator_serves_collections_and_keeps_tags_in_webhook_bodies():
    emulator = ShopifyEmulator(bulk_step_delay=0.0, webhook_retry_delays=())
    try:
        store = emulator.store
        first, second = store.seed_catalog(2, 1)
        made = store.add_collection("Summer Edit", products=[first.id])
        store.collect(made.id, [second.id])
        store.uncollect(made.id, [first.id])
        store.update_product(second.id, tags=["summer", "Linen"])
        client = Client(emulator.app)
        response = client.post(
            GRAPHQL_PATH,
            json={"query": queries.CATALOG_PAGE, "variables": {"first": 8}},
            headers={"X-Shopify-Access-Token": "shpat_sandbox"},
        )
        nodes = orjson.loads(response.get_data())["data"]["products"]["nodes"]
        found = {node["id"]: node for node in nodes}
        assert found[first.id]["collections"]["nodes"] == []
        assert found[second.id]["collections"]["nodes"] == [
            {"id": made.id, "handle": "summer-edit", "title": "Summer Edit"}
        ]
        assert found[second.id]["tags"] == ["Linen", "summer"]
        body = payloads.product(second)
        assert body["tags"] == "Linen, summer"  # REST bodies spell tags as one comma-separated string
        assert payloads.collection(made)["admin_graphql_api_id"] == made.id
    finally:
        emulator.close()


# --- Walmart --------------------------------------------------------------------------------------------------


def _walmart_item(sku: str, **fields: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "productName": "Rugged Vest",
        "price": {"currency": "USD", "amount": Decimal("59.99")},
        "publishedStatus": "PUBLISHED",
        "shelf": json.dumps(["Home Page", "Clothing", "Men", "Mens Coats & Jackets"]),
        "productType": "Outerwear Coats, Jackets & Vests",
        **fields,
    }


def test_a_walmart_items_shelf_path_and_product_type_are_its_collections_and_it_has_no_tags():
    parts = walmart_mapper.parse_item(_walmart_item("2792005"), "USD")
    product = walmart_mapper.build_product([parts])
    assert product.collections == (
        CollectionRef(
            "shelf:clothing-men-mens-coats-jackets",
            "clothing-men-mens-coats-jackets",
            "Clothing > Men > Mens Coats & Jackets",
        ),
        CollectionRef(
            "product-type:outerwear-coats-jackets-vests",
            "outerwear-coats-jackets-vests",
            "Outerwear Coats, Jackets & Vests",
        ),
    )
    assert product.tags == ()
    bare = walmart_mapper.parse_item(_walmart_item("1", shelf='["Home Page"]', productType=""), "USD")
    assert bare.collections == ()


def test_a_walmart_variant_group_keeps_the_collections_it_was_given():
    raw = [
        _walmart_item("TEE-S", variantGroupId="TEE", productType="Shirts"),
        _walmart_item("TEE-M", variantGroupId="TEE", productType="T-Shirts"),
    ]
    parts = [walmart_mapper.parse_item(item, "USD") for item in raw]
    assert [c.title for c in walmart_mapper.build_product(parts).collections][-1] == "Shirts"
    fixed = walmart_mapper.build_product(parts, "Tee", parts[1].collections)
    assert [c.title for c in fixed.collections][-1] == "T-Shirts"


# --- feeds ------------------------------------------------------------------------------------------------------


def _row(**columns: str) -> dict[str, str]:
    return {"id": "SKU-1", "title": "Linen shirt", "price": "30.00 USD", **columns}


def test_feed_columns_give_tags_and_collections():
    parts = feed_mapper.parse_row(
        _row(
            product_type="Apparel >  Shirts",
            collections="Summer Sale, New in,",
            custom_label_0="Summer",
            custom_label_3="clearance",
            tags="linen, summer",
        )
    )
    assert parts.tags == ("clearance", "linen", "Summer")
    assert parts.collections == (
        CollectionRef("product-type:apparel-shirts", "apparel-shirts", "Apparel > Shirts"),
        CollectionRef("summer-sale", "summer-sale", "Summer Sale"),
        CollectionRef("new-in", "new-in", "New in"),
    )
    product = feed_mapper.build_product([parts, feed_mapper.parse_row(_row(id="SKU-2", tags="other"))])
    assert product.tags == parts.tags and product.collections == parts.collections  # the first row's
    assert feed_mapper.parse_row(_row()).tags == () and feed_mapper.parse_row(_row()).collections == ()


def test_a_json_feed_record_may_list_tags_and_collections():
    record = feed_mapper.normalize_record(
        {**_row(), "Tags": ["summer", "linen"], "collections": ["Summer Sale"], "custom_label_1": 2026}
    )
    parts = feed_mapper.parse_row(record)
    assert parts.tags == ("2026", "linen", "summer")
    assert [c.handle for c in parts.collections] == ["summer-sale"]


@pytest.mark.parametrize("fields", [{"product_type": " > > "}, {"collections": " , ,"}])
def test_blank_feed_groups_are_none(fields: dict[str, str]):
    assert feed_mapper.parse_row(_row(**fields)).collections == ()
