"""Shopify mappers: money and ids, catalog nodes, bulk JSONL reassembly, inventory levels and order input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.shopify import bulk_mapper, mapper, order_mapper
from connector.domain.catalog import ProductStatus
from connector.domain.money import Money
from connector.domain.orders import Address, ExternalOrderRef, Order, OrderLine

P1 = "gid://shopify/Product/1"
P2 = "gid://shopify/Product/2"


def variant_node(number: int, price: str = "10.00", **fields: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": f"gid://shopify/ProductVariant/{number}",
        "title": f"Size {number}",
        "sku": f"SKU-{number}",
        "barcode": None,
        "price": price,
        "compareAtPrice": None,
        "inventoryQuantity": 5,
        "selectedOptions": [{"name": "Size", "value": str(number)}],
        "inventoryItem": {"id": f"gid://shopify/InventoryItem/{number}", "tracked": True},
    }
    node.update(fields)
    return node


def product_node(product_id: str = P1, **fields: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": product_id,
        "title": "Tee",
        "handle": "tee",
        "status": "ACTIVE",
        "vendor": "Acme",
        "description": "Soft",
        "onlineStoreUrl": "https://demo.example/tee",
        "updatedAt": "2026-11-01T10:00:00Z",
    }
    node.update(fields)
    return node


def test_ids_and_money():
    assert mapper.gid("InventoryItem", 271878346596884015) == "gid://shopify/InventoryItem/271878346596884015"
    assert mapper.gid_type("gid://shopify/ProductVariant/3") == "ProductVariant"
    assert mapper.gid_type("3") is None
    with pytest.raises(ValueError):
        mapper.gid("Product", "12a")
    with pytest.raises(ValueError):
        mapper.gid("Product", 1.5)
    assert mapper.money("12.99", "USD") == Money(1299, "USD")
    assert mapper.money("1500.0", "JPY") == Money(1500, "JPY")
    assert mapper.money(Decimal("1.2345"), "KWD") == Money(1234, "KWD")  # half-even at the minor unit
    for bad in ("-1.00", "abc", 1.5, None, "NaN"):
        with pytest.raises(ValueError):
            mapper.money(bad, "USD")
    assert mapper.decimal_text(Money(1299, "USD")) == "12.99"
    assert mapper.decimal_text(Money(1500, "JPY")) == "1500"


def test_quantities():
    assert mapper.quantity(3) == 3
    assert mapper.quantity(-2) == 0
    assert mapper.quantity(7, tracked=False) is None
    assert mapper.quantity(None) is None
    with pytest.raises(ValueError):
        mapper.quantity("3")


def test_a_catalog_page_node_becomes_a_product():
    node = product_node(
        media={"nodes": [{"id": "m1", "image": {"url": "https://cdn/a.jpg"}}, {"id": "v1"}]},
        variants={
            "pageInfo": {"hasNextPage": True, "endCursor": "c1"},
            "nodes": [
                variant_node(1, price="10.00", compareAtPrice="12.50"),
                variant_node(
                    2,
                    title="Default Title",
                    compareAtPrice="5.00",
                    inventoryQuantity=-3,
                    selectedOptions=[{"name": "Title", "value": "Default Title"}],
                ),
                variant_node(3, inventoryItem={"id": "gid://shopify/InventoryItem/3", "tracked": False}),
                variant_node(4, price="-1"),
            ],
        },
    )
    page = mapper.page_product(node, "USD")
    product = page.product
    assert page.more_variants_after == "c1"
    assert product.external_id == P1 and product.title == "Tee" and product.vendor == "Acme"
    assert product.media == ("https://cdn/a.jpg",)
    assert product.status is ProductStatus.ACTIVE
    assert product.source_updated_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    first, second, third = product.variants
    assert first.price == Money(1000, "USD") and first.compare_at_price == Money(1250, "USD")
    assert first.options == (("Size", "1"),) and first.inventory_item_ref == "gid://shopify/InventoryItem/1"
    assert second.title == "Tee" and second.options == () and second.compare_at_price is None
    assert second.quantity == 0
    assert third.quantity is None
    assert [ref for ref, _ in page.errors] == ["gid://shopify/ProductVariant/4"]


def test_unusable_products_are_refused():
    with pytest.raises(ValueError):
        mapper.product_header(product_node(status="WEIRD"))
    with pytest.raises(ValueError):
        mapper.product_header(product_node(title=" "))
    with pytest.raises(ValueError):
        mapper.product_header(product_node(product_id="gid://shopify/Collection/1"))


def bulk_line(record: dict[str, Any], parent: str | None = None) -> bytes:
    if parent:
        record = {**record, "__parentId": parent}
    return json.dumps(record).encode()


def assemble(lines: list[bytes], max_buffered: int = 1000) -> tuple[list[Any], bulk_mapper.BulkAssembler]:
    assembler = bulk_mapper.BulkAssembler("USD", max_buffered=max_buffered)
    out: list[Any] = []
    for position, line in enumerate(lines, start=1):
        out += list(assembler.add_line(position, line))
    out += list(assembler.finish())
    return out, assembler


def test_bulk_lines_are_rebuilt_from_parent_ids_in_any_order():
    lines = [
        bulk_line(variant_node(21), P2),  # a child before its parent
        bulk_line(product_node(P1)),
        bulk_line(variant_node(11), P1),
        bulk_line(product_node(P2, title="Mug")),
        bulk_line({"id": "gid://shopify/MediaImage/9", "image": {"url": "https://cdn/mug.jpg"}}, P2),
        bulk_line(variant_node(12), P1),  # after another parent (2026-01+ ungrouped output)
        bulk_line(variant_node(22), P2),
    ]
    products, assembler = assemble(lines)
    assert [p.external_id for p in products] == [P2, P1] or [p.external_id for p in products] == [P1, P2]
    by_id = {p.external_id: p for p in products}
    assert [v.external_id[-2:] for v in by_id[P1].variants] == ["11", "12"]
    assert [v.external_id[-2:] for v in by_id[P2].variants] == ["21", "22"]
    assert by_id[P2].media == ("https://cdn/mug.jpg",)
    assert by_id[P2].title == "Mug"
    assert assembler.errors == []


def test_bulk_problems_are_reported_not_fatal():
    lines = [
        b"not-json-line",
        bulk_line(product_node(P1)),
        bulk_line(variant_node(11, price="oops"), P1),
        bulk_line(variant_node(12), P1),
        bulk_line(variant_node(31), "gid://shopify/Product/3"),  # parent never exported
        bulk_line(product_node(P2, status="BOGUS")),
        bulk_line(variant_node(21), P2),
    ]
    products, assembler = assemble(lines)
    assert [(p.external_id, len(p.variants)) for p in products] == [(P1, 1)]
    assert [position for position, _ in assembler.errors] == [1, 3, 6, 7, 5]
    assert assembler.skipped_refs == {  # each refused line with the product it belongs to
        "gid://shopify/ProductVariant/11",
        "gid://shopify/ProductVariant/21",
        "gid://shopify/ProductVariant/31",
        P1,
        P2,
        "gid://shopify/Product/3",
    }


def test_bulk_memory_is_bounded_by_yielding_parts():
    lines = [bulk_line(product_node(P1)), bulk_line(product_node(P2))]
    lines += [bulk_line(variant_node(100 + n), P1) for n in range(6)]
    lines += [bulk_line(variant_node(200 + n), P2) for n in range(3)]
    lines += [bulk_line(variant_node(150), P1)]  # a late variant of a product already yielded
    assembler = bulk_mapper.BulkAssembler("USD", max_buffered=4)
    early: list[Any] = []
    for position, line in enumerate(lines, start=1):
        early += list(assembler.add_line(position, line))
        assert assembler._buffered <= 5
    assert early, "the buffer was relieved before the end"
    rest = list(assembler.finish())
    parts = early + rest
    variants = [v.external_id for p in parts for v in p.variants]
    assert len(variants) == len(set(variants)) == 10
    headers = {(p.external_id, p.title, p.media, p.content_hash()) for p in parts if p.external_id == P1}
    assert len(headers) == 1, "every part of a product has the same header"


def test_up_to_2048_variants_of_one_product():
    lines = [bulk_line(product_node(P1))] + [bulk_line(variant_node(n), P1) for n in range(1, 2049)]
    products, _ = assemble(lines, max_buffered=5000)
    assert len(products) == 1 and len(products[0].variants) == 2048


def test_inventory_levels():
    at = {
        "id": "gid://shopify/ProductVariant/1",
        "inventoryItem": {
            "id": "gid://shopify/InventoryItem/1",
            "tracked": True,
            "inventoryLevel": {
                "updatedAt": "2026-11-02T00:00:00Z",
                "quantities": [{"name": "available", "quantity": 7}],
            },
        },
    }
    level = mapper.level_at_location(at, "gid://shopify/Location/5")
    assert (level.variant_external_id, level.location_ref, level.available) == (
        "gid://shopify/ProductVariant/1",
        "gid://shopify/Location/5",
        7,
    )
    not_stocked = {"id": "v", "inventoryItem": {"id": "i", "tracked": True, "inventoryLevel": None}}
    assert mapper.level_at_location(not_stocked, "L").available == 0
    untracked = {"id": "v", "inventoryItem": {"id": "i", "tracked": False, "inventoryLevel": None}}
    assert mapper.level_at_location(untracked, "L").available is None
    summed = {
        "id": "v",
        "inventoryItem": {
            "tracked": True,
            "inventoryLevels": {
                "nodes": [
                    {"location": {"id": "L1"}, "quantities": [{"name": "available", "quantity": 2}]},
                    {"location": {"id": "L2"}, "quantities": [{"name": "available", "quantity": -1}]},
                    {"location": {"id": "L3"}, "quantities": [{"name": "available", "quantity": 4}]},
                ]
            },
        },
    }
    assert mapper.summed_level(summed, "default").available == 5, "summed as stored, like inventoryQuantity"
    oversold = {
        "id": "v",
        "inventoryItem": {
            "tracked": True,
            "inventoryLevels": {
                "nodes": [{"location": {"id": "L1"}, "quantities": [{"name": "available", "quantity": -3}]}]
            },
        },
    }
    assert mapper.summed_level(oversold, "default").available == 0


def test_set_quantities_always_sends_change_from_quantity():
    data = mapper.set_quantities_input([("I1", "L1", 5, 3), ("I2", "L1", 0, None)])
    assert data["name"] == "available" and data["reason"] == "correction"
    assert all("changeFromQuantity" in entry for entry in data["quantities"])
    assert data["quantities"][1]["changeFromQuantity"] is None
    assert mapper.idempotency_key("a", [1]) == mapper.idempotency_key("a", [1])
    assert mapper.idempotency_key("a", [1]) != mapper.idempotency_key("a", [2])


def test_order_variables():
    order = Order(
        id="ord_1",
        currency="USD",
        lines=(
            OrderLine(
                "gid://shopify/ProductVariant/1", 2, Money(1000, "USD"), Money(300, "USD"), Money(170, "USD")
            ),
            OrderLine("gid://shopify/ProductVariant/2", 1, Money(500, "USD")),
        ),
        buyer_email="buyer@example.com",
        shipping_address=Address(
            "Ada Lovelace", "1 Main St", "Springfield", "us", "12345", province_code="IL"
        ),
    )
    variables = order_mapper.order_variables(order, "key-1", extra_tags=["live"], source_name="storelink")
    data = variables["order"]
    assert data["sourceIdentifier"] == "key-1"
    assert (
        data["tags"][0] == "storelink"
        and data["tags"][1] == order_mapper.key_tag("key-1")
        and "live" in data["tags"]
    )
    first = data["lineItems"][0]
    assert first["priceSet"] == {"shopMoney": {"amount": "10.00", "currencyCode": "USD"}}
    assert first["quantity"] == 2
    assert first["taxLines"][0]["rate"] == "0.1000"
    assert "taxLines" not in data["lineItems"][1]
    # 2000 - 300 + 170 + 500 = 2370
    assert data["transactions"][0]["amountSet"]["shopMoney"]["amount"] == "23.70"
    assert data["transactions"][0]["kind"] == "SALE" and data["transactions"][0]["status"] == "SUCCESS"
    assert data["discountCode"]["itemFixedDiscountCode"]["amountSet"]["shopMoney"]["amount"] == "3.00"
    assert data["shippingAddress"]["firstName"] == "Ada" and data["shippingAddress"]["countryCode"] == "US"
    assert data["email"] == "buyer@example.com" and data["sourceName"] == "storelink"
    assert variables["options"]["inventoryBehaviour"] == "DECREMENT_OBEYING_POLICY"
    for line in data["lineItems"]:
        json.dumps(line)  # JSON-ready, no Decimal or float inside


def test_orders_are_checked():
    mixed = Order("o", "USD", (OrderLine("gid://shopify/ProductVariant/1", 1, Money(1, "EUR")),))
    with pytest.raises(ValueError):
        order_mapper.order_variables(mixed, "k")
    with pytest.raises(ValueError):
        order_mapper.order_variables(Order("o", "USD", ()), "k")
    with pytest.raises(ValueError):
        order_mapper.order_variables(Order("o", "USD", (OrderLine("123", 1, Money(1, "USD")),)), "k")
    assert order_mapper.order_ref({"id": "gid://shopify/Order/9", "name": "#1009"}) == ExternalOrderRef(
        "gid://shopify/Order/9", "#1009"
    )
    with pytest.raises(ValueError):
        order_mapper.order_ref(None)


def test_search_values_and_tags():
    assert order_mapper.search_literal("a'b\\c") == "'a\\'b\\\\c'"
    assert len(order_mapper.key_tag("x" * 300)) <= 40
    assert order_mapper.key_tag("a") != order_mapper.key_tag("b")


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
@pytest.mark.parametrize(
    "text",
    [
        "12.99",
        "12.9",
        "12",
        "0",
        "0.00",
        "007.50",
        " 12.99 ",
        "12.999",
        "12.995",
        "1500",
        "12.",
        ".5",
        "-1.00",
        "+1.00",
        "1e3",
        "1_000",
        "\uff11\uff12",  # full-width digits
        "12.5 ",
        "99999999999999999.99",
        "123456789012345678901",
    ],
)
def test_a_price_text_reads_as_decimal_quantizing_reads_it(text, currency):
    try:
        expected: object = mapper._money(text, currency)
    except ValueError:
        expected = ValueError
    try:
        found: object = mapper.money(text, currency)
    except ValueError:
        found = ValueError
    assert found == expected
