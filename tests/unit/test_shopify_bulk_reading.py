"""Bulk export JSONL read as Shopify documents it: types from `__typename` or the GID, lines of types the
catalog does not model ignored and counted, every product a line refers to accounted for."""

from __future__ import annotations

from typing import Any

from adapters.shopify import mapper
from tests.unit.test_shopify_mapper import P1, P2, assemble, bulk_line, product_node, variant_node

P3 = "gid://shopify/Product/3"


def test_lines_of_other_types_are_counted_and_ignored():
    lines = [
        bulk_line(product_node(P1)),
        bulk_line(
            {"id": "gid://shopify/Metafield/5", "namespace": "custom", "key": "fit", "value": "slim"}, P1
        ),
        bulk_line({"__typename": "Video", "sources": []}, P1),  # a media node with no id asked for
        bulk_line(
            {"__typename": "MediaImage", "id": "gid://shopify/MediaImage/7", "image": {"url": "u"}}, P1
        ),
        bulk_line(variant_node(11, __typename="ProductVariant"), P1),
        bulk_line({"id": "gid://shopify/Metafield/6", "key": "k"}, "gid://shopify/ProductVariant/11"),
        bulk_line({"id": "gid://shopify/InventoryLevel/9?inventory_item_id=11", "quantities": []}, P1),
        bulk_line({"id": "gid://shopify/Collection/4", "title": "Summer"}),  # a root of another type
    ]
    products, assembler = assemble(lines)
    assert assembler.errors == [] and assembler.skipped == 0 and assembler.skipped_refs == set()
    (product,) = products
    assert [v.external_id for v in product.variants] == ["gid://shopify/ProductVariant/11"]
    assert product.media == ("u",)
    assert assembler.ignored == {"Metafield": 2, "Video": 1, "InventoryLevel": 1, "Collection": 1}


def test_a_product_whose_variants_were_all_refused_is_still_read():
    lines = [
        bulk_line(variant_node(11, price="free"), P1),  # before its product (ungrouped output)
        bulk_line(product_node(P1, title="Kept")),
        bulk_line(variant_node(12, price="-1"), P1),
        bulk_line(product_node(P2)),  # no variant lines at all
    ]
    products, assembler = assemble(lines)
    assert [(p.external_id, p.title, p.variants) for p in products] == [(P1, "Kept", ()), (P2, "Tee", ())]
    assert assembler.skipped == 2
    assert assembler.skipped_refs == {
        "gid://shopify/ProductVariant/11",
        "gid://shopify/ProductVariant/12",
        P1,
    }


def test_every_product_a_line_refers_to_is_named_when_it_cannot_be_read():
    lines = [
        bulk_line({"id": "gid://shopify/Metafield/5", "key": "k"}, P3),  # its product's line is missing
        bulk_line(product_node(P2, status="RETIRED")),  # unusable: its variants are refused with it
        bulk_line(variant_node(21), P2),
        bulk_line({"__typename": "ProductVariant", "title": "no id"}, P1),
        bulk_line({"title": "no id, no type"}),
    ]
    products, assembler = assemble(lines)
    assert products == []
    assert assembler.skipped == 4
    assert assembler.skipped_refs == {P1, P2, P3, "gid://shopify/ProductVariant/21"}


def test_the_skipped_count_goes_past_the_recorded_errors():
    lines = [bulk_line(product_node(P1))]
    lines += [bulk_line(variant_node(n, price="x"), P1) for n in range(1, 1206)]
    products, assembler = assemble(lines, max_buffered=10)
    assert len(assembler.errors) == 1000 and assembler.skipped == 1205
    assert [p.external_id for p in products] == [P1]


def test_an_empty_sku_stays_empty():
    header = mapper.product_header(product_node(P1))

    def read(**fields: Any) -> str | None:
        return mapper.variant(variant_node(1, **fields), "USD", header.status, header.title).sku

    assert read(sku="") == ""
    assert read(sku=None) is None
    assert read(sku=" AB-1 ") == "AB-1"
    page = mapper.page_product({**product_node(P1), "variants": {"nodes": [variant_node(2, sku="")]}}, "USD")
    assert page.product.variants[0].sku == ""


def test_a_part_carries_every_field_of_its_product():
    lines = [
        bulk_line(product_node(P1, tags=["Summer", "sale"])),
        bulk_line(
            {"__typename": "MediaImage", "id": "gid://shopify/MediaImage/7", "image": {"url": "u"}}, P1
        ),
        bulk_line({"id": "gid://shopify/Collection/4", "handle": "summer", "title": "Summer"}, P1),
        bulk_line(variant_node(11, price="12.50", compareAtPrice="20.00"), P1),
        bulk_line(variant_node(12, price="12.50"), P1),
    ]
    (product,), _ = assemble(lines)
    header = mapper.product_header(product_node(P1, tags=["Summer", "sale"]))
    variants = tuple(
        mapper.variant(variant_node(n, price="12.50"), "USD", header.status, "Tee") for n in (11, 12)
    )
    fields = {f: getattr(product, f) for f in product.__slots__}
    expected = {f: getattr(header, f) for f in header.__slots__}
    expected["media"] = ("u",)
    expected["collections"] = (mapper.CollectionRef("gid://shopify/Collection/4", "summer", "Summer"),)
    expected["variants"] = product.variants
    assert fields == expected
    assert [v.price.minor for v in product.variants] == [1250, 1250]
    assert [v.compare_at_price.minor if v.compare_at_price else None for v in product.variants] == [
        2000,
        None,
    ]
    assert product.variants[1] == variants[1]
