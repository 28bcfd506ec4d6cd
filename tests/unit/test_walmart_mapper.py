"""Walmart mapper: defensive parsing of items, inventory, orders and Multichannel answers (research §9 samples)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.walmart import mapper, order_mapper
from connector.domain.catalog import ProductStatus
from connector.domain.money import Money
from connector.domain.orders import Address, Order, OrderLine


def decode(text: str) -> object:
    """As the client decodes answers: JSON numbers with a fraction as Decimal."""
    return json.loads(text, parse_float=Decimal)


# Items page excerpt: eolabs-io/walmart-api tests/Stubs/Responses/fetchItems.json @ 546869a6 (Walmart's own
# documentation example ids), trimmed to six items; `nextCursor` as given there.
ITEMS_PAGE = r"""
{"ItemResponse": [
  {"mart": "WALMART_US", "sku": "2792005", "wpid": "0RE1TWYTKBKH", "upc": "886859944807",
   "gtin": "00886859944807", "productName": "Carhartt Men's Rugged Vest",
   "shelf": "[\"Home Page\",\"Clothing\",\"Mens Clothing\",\"Mens Jackets & Outerwear\",\"Mens Jackets & Outerwear\"]",
   "productType": "Outerwear Coats, Jackets & Vests", "price": {"currency": "USD", "amount": 59.99},
   "publishedStatus": "UNPUBLISHED",
   "unpublishedReasons": {"reason": ["No shipping information was set up."]}, "lifecycleStatus": "ACTIVE"},
  {"mart": "WALMART_US", "sku": "4419464", "wpid": "0RFUYQBZLPP5", "upc": "889169324734",
   "gtin": "00889169324734", "productName": "Marmot Women's Minimalist Jacket",
   "shelf": "[\"Home Page\",\"Clothing\",\"Women\",\"Womens Coats & Jackets Shop All\"]",
   "productType": "Outerwear Coats, Jackets & Vests", "price": {"currency": "USD", "amount": 189},
   "publishedStatus": "UNPUBLISHED", "lifecycleStatus": "ACTIVE"},
  {"mart": "WALMART_US", "sku": "NIJDJuuyUKhQQei", "wpid": "0RJMCVFI97KQ", "upc": "", "gtin": "05828799302366",
   "productName": "Electronic Cables",
   "shelf": "[\"Home Page\",\"Electronics\",\"Computers\",\"Computer Accessories\",\"Computer Cables & Connectors\"]",
   "productType": "Computer Cables", "price": {"currency": "USD", "amount": 70}, "publishedStatus": "UNPUBLISHED",
   "lifecycleStatus": "RETIRED"},
  {"mart": "WALMART_US", "sku": "5310435", "wpid": "0RLSXHJMCII7", "upc": "192660208312",
   "gtin": "00192660208312", "productName": "Columbia Men's Chuterunner II Jacket", "shelf": "[\"UNNAV\"]",
   "productType": "Outerwear Coats, Jackets & Vests", "price": {"currency": "USD", "amount": 149.95},
   "publishedStatus": "SYSTEM_PROBLEM", "lifecycleStatus": "ACTIVE"},
  {"mart": "WALMART_US", "sku": "4RL3E7TaH9XMNU7", "wpid": "0ROA3CD37TAG", "upc": "", "gtin": "05674399098693",
   "productName": "Electronic Cables", "shelf": "[\"Home Page\",\"Electronics\"]", "productType": "default",
   "price": {"currency": "USD", "amount": 10}, "publishedStatus": "PUBLISHED", "lifecycleStatus": "ACTIVE"},
  {"mart": "WALMART_US", "sku": "04496546160869", "wpid": "0RVR1D7PSH41", "upc": "", "gtin": "04496546160869",
   "productName": "HP_CLOTHING_CATEGORY_PRODUCT_NAME", "shelf": "[\"Home Page\",\"Feature\"]",
   "productType": "Button-Up Shirts", "price": {"currency": "USD", "amount": 90}, "publishedStatus": "IN_PROGRESS",
   "lifecycleStatus": "ACTIVE"}
 ],
 "totalItems": 11440,
 "nextCursor": "AoE/GjBSWFpNOUJBS01QMFdBTE1BUlRfVVM="}
"""

# Orders page excerpt: eolabs-io/walmart-api tests/Stubs/Responses/fetchOrders.json @ 5298a845, two orders.
ORDERS_PAGE = r"""
{"list": {
  "meta": {"totalCount": 31, "limit": 10,
    "nextCursor": "?limit=10&hasMoreElements=true&soIndex=31&poIndex=10&partnerId=100009&sellerId=8&createdStartDate=2013-08-16&createdEndDate=2019-09-17T18:47:03.703Z"},
  "elements": {"order": [
    {"purchaseOrderId": "1796277083022", "customerOrderId": "5281956426648",
     "customerEmailId": "3A31739D8B0A45A1B23F7F8C81C8747F@relay.walmart.com", "orderDate": 1568466571000,
     "orderLines": {"orderLine": [
       {"lineNumber": "4", "item": {"productName": "Laundry Bag", "sku": "test1", "weight": {"value": 171, "unit": "grams"}},
        "charges": {"charge": [{"chargeType": "PRODUCT", "chargeName": "ItemPrice",
          "chargeAmount": {"currency": "USD", "amount": 10},
          "tax": {"taxName": "Tax1", "taxAmount": {"currency": "USD", "amount": 0.8}}}]},
        "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": "1"}, "statusDate": 1568466647000,
        "orderLineStatuses": {"orderLineStatus": [{"status": "Created",
          "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "1"}, "cancellationReason": null,
          "trackingInfo": {"shipDateTime": 1566933169000, "carrierName": {"otherCarrier": "USPS Marketplace", "carrier": null},
            "methodCode": "Value", "trackingNumber": "9400100000000000000000"}}]},
        "refund": null}]},
     "shipNode": {"type": "3PLFulfilled", "name": "NAME", "id": "DSDSFJGDJL"}},
    {"purchaseOrderId": "3796235970012", "customerOrderId": "5241952426446", "orderDate": 1568145593000,
     "orderLines": {"orderLine": [
       {"lineNumber": "1", "item": {"productName": "Metronome", "sku": "TEST-02"},
        "charges": {"charge": [{"chargeType": "PRODUCT", "chargeName": "ItemPrice",
          "chargeAmount": {"currency": "USD", "amount": 0}, "tax": null}]},
        "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": "1"},
        "orderLineStatuses": {"orderLineStatus": [{"status": "Cancelled",
          "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "1"}, "trackingInfo": null}]}}]}}
  ]}}}
"""


def items() -> list:
    return mapper.items_of(decode(ITEMS_PAGE))


def test_items_page_parses_with_money_barcodes_shelf_and_status():
    parsed = [mapper.parse_item(item, "USD") for item in items()]
    vest = parsed[0]
    assert vest.product_id == "2792005"
    assert vest.variant.external_id == "2792005" and vest.variant.sku == "2792005"
    assert vest.variant.price == Money(5999, "USD")
    assert vest.variant.barcode == "00886859944807"
    assert vest.status is ProductStatus.DRAFT
    assert dict(vest.extra)["shelf"].startswith("Home Page > Clothing > Mens Clothing")
    assert dict(vest.extra)["wpid"] == "0RE1TWYTKBKH"
    assert parsed[1].variant.price == Money(18900, "USD")  # an integral JSON number
    cables = parsed[2]
    assert cables.variant.barcode == "05828799302366"  # empty upc, gtin kept
    assert cables.status is ProductStatus.ARCHIVED  # RETIRED
    assert parsed[3].status is ProductStatus.DRAFT  # SYSTEM_PROBLEM
    assert parsed[4].status is ProductStatus.ACTIVE  # PUBLISHED
    assert parsed[5].status is ProductStatus.DRAFT  # IN_PROGRESS
    assert mapper.next_cursor(decode(ITEMS_PAGE)) == "AoE/GjBSWFpNOUJBS01QMFdBTE1BUlRfVVM="


def test_prices_never_go_through_float():
    part = mapper.parse_item({"sku": "x", "price": {"currency": "USD", "amount": Decimal("0.1")}}, "USD")
    assert part.variant.price == Money(10, "USD")
    part = mapper.parse_item({"sku": "x", "price": {"amount": "12.345"}}, "USD")
    assert part.variant.price == Money(1234, "USD")  # half-even to the currency's cents
    part = mapper.parse_item({"sku": "y", "price": {"currency": "JPY", "amount": 1200}}, "USD")
    assert part.variant.price == Money(1200, "JPY")


@pytest.mark.parametrize(
    "item, problem",
    [
        ({"price": {"amount": 1}}, "sku is missing"),
        ({"sku": "a"}, "price is missing"),
        ({"sku": "a", "price": {"amount": -1}}, "non-negative"),
        ({"sku": "a", "price": {"amount": "abc"}}, "not a number"),
        ({"sku": "a", "price": {"amount": True}}, "not a number"),
        ({"sku": "a", "price": {"amount": 1, "currency": "dollars"}}, "ISO 4217"),
    ],
)
def test_unusable_items_say_why(item, problem):
    with pytest.raises(ValueError, match=problem):
        mapper.parse_item(item, "USD")


def test_shelf_is_read_from_a_json_string_an_array_or_garbage():
    assert mapper.shelf('["A","B"]') == ("A", "B")
    assert mapper.shelf(["A", " ", "C"]) == ("A", "C")
    assert mapper.shelf("not json") == ("not json",)
    assert mapper.shelf("") == ()
    assert mapper.shelf(None) == ()


def test_variant_groups_make_one_product_with_options():
    raw = [
        {
            "sku": "TEE-S",
            "productName": "Tee small",
            "price": {"amount": 10},
            "publishedStatus": "PUBLISHED",
            "variantGroupId": "TEE",
            "variantGroupInfo": {
                "isPrimaryVariant": False,
                "groupingAttributes": [{"name": "size", "value": "S"}],
            },
        },
        {
            "sku": "TEE-M",
            "productName": "Tee",
            "price": {"amount": 11},
            "publishedStatus": "UNPUBLISHED",
            "variantGroupId": "TEE",
            "variantGroupInfo": {
                "isPrimaryVariant": True,
                "groupingAttributes": [{"name": "size", "value": "M"}],
            },
        },
    ]
    parts = [mapper.parse_item(item, "USD") for item in raw]
    product = mapper.build_product(parts)
    assert product.external_id == "TEE"
    assert product.title == "Tee"  # the primary variant's name
    assert [v.external_id for v in product.variants] == ["TEE-S", "TEE-M"]
    assert product.variants[0].options == (("size", "S"),) and product.variants[0].title == "S"
    assert product.status is ProductStatus.ACTIVE  # one variant is published
    assert mapper.build_product(parts, "Fixed").title == "Fixed"


def test_single_item_answer_shapes():
    assert mapper.items_of({"responseRecord": {"sku": "a"}}) == [{"sku": "a"}]
    assert mapper.items_of({"ItemResponse": [{"sku": "a"}, "junk"]}) == [{"sku": "a"}]
    assert mapper.items_of({"ItemResponse": None}) == []
    assert mapper.next_cursor({"nextCursor": ""}) is None
    assert mapper.next_cursor({"nextCursor": None}) is None
    assert mapper.next_cursor({"meta": {"nextCursor": "abc"}}) == "abc"


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, 3),
        ("3", 3),
        (" 7 ", 7),
        ("3.0", 3),
        (Decimal("4"), 4),
        ({"unit": "EACH", "amount": "5"}, 5),
        ({"unitOfMeasure": "EACH", "measurementValue": 2}, 2),
    ],
)
def test_quantities_come_as_strings_numbers_or_objects(value, expected):
    assert mapper.quantity(value) == expected


@pytest.mark.parametrize("value", ["2.5", "x", None, True, {"unit": "EACH"}, Decimal("NaN")])
def test_bad_quantities_are_refused(value):
    with pytest.raises(ValueError):
        mapper.quantity(value)


def test_dates_are_epoch_milliseconds_or_iso():
    assert mapper.epoch_ms(1568466571000) == datetime(2019, 9, 14, 13, 9, 31, tzinfo=UTC)
    assert mapper.epoch_ms("1568466571000") == datetime(2019, 9, 14, 13, 9, 31, tzinfo=UTC)
    assert mapper.epoch_ms("2020-07-29T13:47:18.442Z") == datetime(
        2020, 7, 29, 13, 47, 18, 442000, tzinfo=UTC
    )
    assert mapper.epoch_ms(None) is None
    with pytest.raises(ValueError):
        mapper.epoch_ms("yesterday")


def test_inventory_answers():
    level = mapper.level_from_inventory(
        {"sku": "97964_KFTest", "quantity": {"unit": "EACH", "amount": 10}}, "97964_KFTest", "default"
    )
    assert (level.variant_external_id, level.location_ref, level.available) == ("97964_KFTest", "default", 10)
    nodes = {
        "sku": "a",
        "nodes": [
            {
                "shipNode": "100009",
                "inputQty": {"unit": "EACH", "amount": 5},
                "availToSellQty": {"unit": "EACH", "amount": 3},
                "reservedQty": {"unit": "EACH", "amount": 2},
            },
            {
                "shipNode": "100010",
                "inputQty": {"unit": "EACH", "amount": 9},
                "availToSellQty": {"unit": "EACH", "amount": "4"},
            },
        ],
    }
    assert mapper.level_from_nodes(nodes, "a", "100009").available == 3  # availToSellQty, not inputQty
    summed = mapper.level_from_nodes(nodes, "a", None)
    assert (summed.location_ref, summed.available) == ("default", 7)
    assert mapper.level_from_nodes(nodes, "a", "999") is None


def test_inventory_feeds_of_both_specs():
    one_node = mapper.inventory_feed([("a", 3), ("b", -1)], None)
    assert one_node == {
        "InventoryHeader": {"version": "1.4"},
        "Inventory": [
            {"sku": "a", "quantity": {"unit": "EACH", "amount": 3}},
            {"sku": "b", "quantity": {"unit": "EACH", "amount": 0}},
        ],
    }
    multi = mapper.inventory_feed([("a", 3)], "1000005050")
    assert multi["inventoryHeader"] == {"version": "1.5"}
    assert multi["inventory"][0]["shipNodes"][0]["shipNode"] == "1000005050"


def test_feed_status_counts_and_failures():
    status = mapper.feed_status(
        "F@1",
        {
            "feedId": "F@1",
            "feedStatus": "PROCESSED",
            "itemsReceived": 2,
            "itemsSucceeded": "1",
            "itemsFailed": 1,
            "itemDetails": {
                "itemIngestionStatus": [
                    {"sku": "a", "ingestionStatus": "SUCCESS"},
                    {
                        "sku": "b",
                        "ingestionStatus": "DATA_ERROR",
                        "ingestionErrors": {"ingestionError": [{"code": "X"}]},
                    },
                ]
            },
        },
    )
    assert status.done and (status.received, status.succeeded, status.failed) == (2, 1, 1)
    assert status.failures[0][0] == "b" and "X" in status.failures[0][1]


def test_orders_page_parses_lines_statuses_and_cursor():
    page = decode(ORDERS_PAGE)
    orders = [order_mapper.parse_order(raw) for raw in order_mapper.orders_of(page)]
    first, second = orders
    assert first.purchase_order_id == "1796277083022"
    assert first.ordered_at == datetime(2019, 9, 14, 13, 9, 31, tzinfo=UTC)
    assert first.ship_node_type == "3PLFulfilled"
    assert first.lines[0].line_number == "4" and first.lines[0].quantity == 1
    assert first.sku_quantities() == {"test1": 1}
    assert second.sku_quantities() == {}  # its only line is cancelled
    assert second.sku_quantities(exclude_cancelled=False) == {"TEST-02": 1}
    assert mapper.next_cursor(page).startswith("?limit=10&hasMoreElements=true")


def test_an_order_line_without_sku_is_unusable():
    with pytest.raises(ValueError, match="sku"):
        order_mapper.parse_order({"purchaseOrderId": "1", "orderLines": {"orderLine": [{"item": {}}]}})


def test_seller_order_ids_are_deterministic_short_and_alphanumeric():
    first = order_mapper.seller_order_id("order-push-ord_123")
    assert first == order_mapper.seller_order_id("order-push-ord_123")
    assert first != order_mapper.seller_order_id("order-push-ord_124")
    assert len(first) == 18 and re.fullmatch(r"SL[A-Z2-7]{16}", first)
    assert (
        order_mapper.seller_order_id("k", "vid").startswith("VID")
        and len(order_mapper.seller_order_id("k", "vid")) == 18
    )
    with pytest.raises(ValueError):
        order_mapper.seller_order_id("k", "no-dash")


def order(**changes) -> Order:
    address = Address(
        name="Ada Lovelace",
        line1="1 Main St",
        city="New York",
        country_code="US",
        postal_code="10017-1234",
        province_code="ny",
        phone="+1 (212) 555-0100",
    )
    base = {
        "id": "ord_1",
        "currency": "USD",
        "lines": (OrderLine("SKU 1", 2, Money(1999, "USD")), OrderLine("SKU2", 1, Money(500, "USD"))),
        "buyer_email": "ada@example.com",
        "shipping_address": address,
    }
    base.update(changes)
    return Order(**base)


def test_multichannel_payload_follows_the_schema():
    placed = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)
    body = order_mapper.mcs_order_payload(order(), "SLABC", "CH-1", placed, "STANDARD")
    assert body["header"] == {"headerAttributes": {"buId": "0", "martId": "202"}}
    payload = body["payload"]
    assert payload["orderChannelId"] == "CH-1" and payload["sellerOrderId"] == "SLABC"
    assert payload["orderPlacedTime"] == "2026-11-29T12:00:00.123Z"
    assert payload["needsConfirmation"] is False and payload["partialFulfillments"] is False
    first = payload["orderItems"][0]
    assert first["sellerLineId"] == "1" and payload["orderItems"][1]["sellerLineId"] == "2"
    assert first["itemDetail"] == {"sku": "SKU 1"}
    assert first["qty"] == {"unitOfMeasure": "EACH", "measurementValue": 2}
    address = first["shippingTo"]["address"]
    assert address == {
        "line1": "1 Main St",
        "city": "New York",
        "state": "NY",
        "country": "USA",
        "zip": "10017",
        "addressType": "RESIDENTIAL",
    }
    contact = first["shippingTo"]["contact"]
    assert contact["name"] == {"firstName": "Ada", "lastName": "Lovelace"}
    assert contact["phone"] == "+12125550100" and contact["email"] == "ada@example.com"
    assert first["chargeDetails"][0]["chargePerUnit"] == {"currencyAmount": 0, "currencyUnit": "USD"}
    json.dumps(body)  # serializable as is: no Decimal, no float


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"shipping_address": None}, "shipping address"),
        ({"lines": ()}, "no lines"),
        (
            {"shipping_address": Address("A B", "1 Rd", "Paris", "FR", "75001", province_code="IF")},
            "US only",
        ),
        ({"shipping_address": Address("A B", "1 Rd", "Town", "US", "ABCDE", province_code="NY")}, "ZIP"),
        ({"shipping_address": Address("A B", "1 Rd", "Town", "US", "10001", province_code="")}, "state"),
    ],
)
def test_orders_multichannel_cannot_take_are_refused(changes, problem):
    with pytest.raises(ValueError, match=problem):
        order_mapper.mcs_order_payload(order(**changes), "SL1", "CH", datetime.now(UTC))


def test_multichannel_status_answers():
    body = {
        "payload": [
            {"sellerOrderId": "OTHER", "status": "DELIVERED"},
            {
                "sellerOrderId": "SL1",
                "status": "DELIVERED",
                "shipments": [{"purchaseOrderId": "PO9", "trackingNo": "1Z"}],
                "orderLines": [
                    {"sellerLineId": "1", "qty": {"unitOfMeasure": "EACH", "measurementValue": 2}},
                    {
                        "sellerLineId": "2",
                        "orderLineQuantityInfo": [
                            {"status": "PROCESSING", "statusQuantity": {"measurementValue": "1"}}
                        ],
                    },
                ],
            },
        ]
    }
    status = order_mapper.mcs_status(body, "SL1")
    assert status is not None and status.status == "DELIVERED"
    assert not status.pending and not status.rejected
    assert status.purchase_order_ids == ("PO9",)
    assert status.lines == (("1", 2), ("2", 1))
    assert order_mapper.mcs_status(body, "SL2") is None
    assert order_mapper.mcs_status({"payload": []}, "SL1") is None
    assert order_mapper.mcs_status(
        {"payload": [{"sellerOrderId": "SL1", "status": "received"}]}, "SL1"
    ).pending
    assert order_mapper.mcs_status(
        {"payload": [{"sellerOrderId": "SL1", "status": "REJECTED"}]}, "SL1"
    ).rejected


def test_channel_details():
    body = {
        "payload": {
            "partnerId": "1",
            "mcsDetails": [
                {"orderChannelId": "C1", "orderChannelName": "video", "active": True},
                {"orderChannelId": "C2", "orderChannelName": "old", "active": False},
                {"orderChannelName": "broken"},
            ],
        }
    }
    assert order_mapper.channels(body) == [("C1", "video", True), ("C2", "old", False)]
