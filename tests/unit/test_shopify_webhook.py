"""Shopify webhooks: HMAC over the raw bytes with secret rotation, envelope headers, and topic parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.shopify import webhook
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.store_events import StoreEventKind

SECRET = "test-webhook-secret"
BODY = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
VECTOR = "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="  # published test vector for BODY and SECRET


def headers(topic: str = "products/update", **extra: str) -> dict[str, str]:
    base = {
        "x-shopify-topic": topic,
        "x-shopify-shop-domain": "demo.myshopify.com",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-triggered-at": "2026-11-03T12:00:00.123456Z",
        "x-shopify-api-version": "2026-10",
    }
    base.update(extra)
    return base


def test_signature_matches_the_published_vector():
    assert webhook.signature(SECRET, BODY) == VECTOR
    assert (
        webhook.signature("hush", b'{"id":820982911946154508}')
        == "qBvrsZF7RfB1iS6BX6IHqJTp5L911P7intnPeTPsH0I="
    )


def test_verify_checks_the_raw_bytes_with_any_configured_secret():
    signed = {"x-shopify-hmac-sha256": VECTOR}
    assert webhook.verify([SECRET], signed, BODY)
    assert webhook.verify(["new-secret", SECRET], signed, BODY), (
        "the old secret still verifies after rotation"
    )
    assert webhook.verify([SECRET], {"X-Shopify-Hmac-SHA256": VECTOR}, BODY), (
        "header names are case-insensitive"
    )
    assert not webhook.verify(["other"], signed, BODY)
    assert not webhook.verify([SECRET], signed, BODY + b" ")
    reencoded = json.dumps(json.loads(BODY)).encode()
    assert not webhook.verify([SECRET], signed, reencoded), "a re-serialized body does not verify"
    assert not webhook.verify([], signed, BODY)
    assert not webhook.verify([SECRET], {}, BODY)
    assert not webhook.verify([SECRET], {"x-shopify-hmac-sha256": "é"}, BODY)
    body = b"\xff\xfe not utf-8"
    assert webhook.verify([SECRET], {"x-shopify-hmac-sha256": webhook.signature(SECRET, body)}, body)


def test_store_ref_is_the_shop_domain():
    assert webhook.store_ref(headers()) == "demo.myshopify.com"
    assert webhook.store_ref({"X-Shopify-Shop-Domain": "Demo.myshopify.com"}) == "demo.myshopify.com"
    assert webhook.store_ref({}) is None
    assert webhook.store_ref({"x-shopify-shop-domain": "evil.example.com"}) is None


def test_envelope_reads_delivery_id_topic_and_time():
    body = json.dumps({"id": 788032119674292922, "updated_at": "2026-11-03T11:00:00-05:00"}).encode()
    found = webhook.envelope(headers(), body)
    assert found.delivery_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert found.topic == "products/update"
    assert found.triggered_at == datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=UTC)
    without = {k: v for k, v in headers().items() if k != "x-shopify-triggered-at"}
    assert webhook.envelope(without, body).triggered_at == datetime(2026, 11, 3, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hdrs", "body"),
    [
        ({}, b"{}"),
        (headers(topic="carts/update"), b"{}"),
        (headers(), b"{not json"),
        (headers(), b"[]"),
        (headers(), b"\xff\xfe"),
        (headers(), b'{"id": "abc"}'),
        ({**headers(), "x-shopify-webhook-id": "x" * 300}, b'{"id": 1}'),
    ],
)
def test_malformed_deliveries_are_refused_at_the_door(hdrs, body):
    with pytest.raises(ValidationError):
        webhook.envelope(hdrs, body)


def test_products():
    changed = webhook.parse(
        "products/update", b'{"id": 788032119674292922, "updated_at": "2026-11-03T10:00:00Z"}'
    )
    assert [(e.kind, e.external_id) for e in changed] == [
        (StoreEventKind.PRODUCT_CHANGED, "gid://shopify/Product/788032119674292922")
    ]
    assert changed[0].occurred_at == datetime(2026, 11, 3, 10, tzinfo=UTC)
    when = datetime(2026, 11, 3, tzinfo=UTC)
    deleted = webhook.parse("products/delete", b'{"id": 788032119674292922}', when)
    assert deleted[0].kind is StoreEventKind.PRODUCT_DELETED and deleted[0].occurred_at == when


def test_bulk_operation_finish_names_the_operation_and_its_status():
    body = {
        "admin_graphql_api_id": "gid://shopify/BulkOperation/147595010",
        "completed_at": "2026-11-03T12:03:00-05:00",
        "created_at": "2026-11-03T12:00:00-05:00",
        "error_code": None,
        "status": "completed",
        "type": "query",
    }
    [finished] = webhook.parse("bulk_operations/finish", json.dumps(body).encode())
    assert finished.kind is StoreEventKind.BULK_OPERATION_FINISHED
    assert finished.external_id == "gid://shopify/BulkOperation/147595010"
    assert finished.occurred_at == datetime(2026, 11, 3, 17, 3, tzinfo=UTC)
    assert finished.data == {"status": "COMPLETED"}
    failed = webhook.parse(
        "bulk_operations/finish", json.dumps({**body, "status": "failed", "error_code": "timeout"}).encode()
    )
    assert failed[0].data == {"status": "FAILED", "error_code": "TIMEOUT"}
    for bad in ("gid://shopify/Product/1", 147595010, None):
        with pytest.raises(ValidationError):
            webhook.parse(
                "bulk_operations/finish", json.dumps({**body, "admin_graphql_api_id": bad}).encode()
            )


def test_inventory_level_updates_name_the_inventory_item():
    raw = (
        b'{"inventory_item_id":271878346596884015,"location_id":24826418,"available":null,'
        b'"updated_at":"2020-09-03T08:44:10-04:00",'
        b'"admin_graphql_api_id":"gid:\\/\\/shopify\\/InventoryLevel\\/24826418?inventory_item_id=271878346596884015"}'
    )
    (event,) = webhook.parse("inventory_levels/update", raw)
    assert event.kind is StoreEventKind.INVENTORY_CHANGED
    assert event.external_id == "gid://shopify/InventoryItem/271878346596884015"
    assert event.data == {
        "available": None,
        "location_ref": "gid://shopify/Location/24826418",
        "inventory_item_ref": "gid://shopify/InventoryItem/271878346596884015",
    }
    assert event.occurred_at == datetime(2020, 9, 3, 12, 44, 10, tzinfo=UTC)
    # The sub-second X-Shopify-Triggered-At orders changes made within one second.
    triggered = datetime(2020, 9, 3, 12, 44, 10, 250_000, tzinfo=UTC)
    assert webhook.parse("inventory_levels/update", raw, triggered)[0].occurred_at == triggered
    (negative,) = webhook.parse(
        "inventory_levels/update", b'{"inventory_item_id":1,"location_id":2,"available":-4}'
    )
    assert negative.data["available"] == 0
    with pytest.raises(ValidationError):
        webhook.parse("inventory_levels/update", b'{"inventory_item_id":1,"location_id":2,"available":"x"}')


def test_orders():
    fulfilled = {
        "id": 820982911946154508,
        "name": "#9999",
        "updated_at": "2026-11-03T10:00:00Z",
        "fulfillment_status": "fulfilled",
        "fulfillments": [
            {"tracking_company": "UPS", "tracking_numbers": ["1Z1"], "tracking_urls": ["https://ups/1Z1"]}
        ],
    }
    (event,) = webhook.parse("orders/fulfilled", json.dumps(fulfilled).encode())
    assert event.kind is StoreEventKind.ORDER_FULFILLED
    assert event.external_id == "gid://shopify/Order/820982911946154508"
    assert event.data["tracking"] == [{"number": "1Z1", "url": "https://ups/1Z1", "company": "UPS"}]
    (cancelled,) = webhook.parse("orders/cancelled", b'{"id": 1, "cancel_reason": "customer"}')
    assert cancelled.kind is StoreEventKind.ORDER_CANCELLED and cancelled.data["cancel_reason"] == "customer"
    assert webhook.parse("orders/updated", b'{"id": 1, "cancelled_at": "2026-11-03T10:00:00Z"}')[0].kind is (
        StoreEventKind.ORDER_CANCELLED
    )
    assert webhook.parse("orders/updated", b'{"id": 1, "financial_status": "refunded"}')[0].kind is (
        StoreEventKind.ORDER_REFUNDED
    )
    assert webhook.parse("orders/updated", b'{"id": 1, "financial_status": "paid"}') == []


def test_refunds():
    refund = {
        "id": 929361462,
        "order_id": 450789469,
        "created_at": "2026-11-03T10:00:00Z",
        "transactions": [
            {"kind": "refund", "status": "success", "amount": "41.94", "currency": "USD"},
            {"kind": "refund", "status": "failure", "amount": "9.99", "currency": "USD"},
        ],
    }
    (event,) = webhook.parse("refunds/create", json.dumps(refund).encode())
    assert event.kind is StoreEventKind.ORDER_REFUNDED
    assert event.external_id == "gid://shopify/Order/450789469"
    assert event.data == {"refund_id": "gid://shopify/Refund/929361462", "amount": "41.94", "currency": "USD"}


def test_uninstall_and_compliance_topics():
    (event,) = webhook.parse("app/uninstalled", b'{"id": 5, "myshopify_domain": "Demo.myshopify.com"}')
    assert event.kind is StoreEventKind.APP_UNINSTALLED and event.external_id == "demo.myshopify.com"
    (fallback,) = webhook.parse("app/uninstalled", b"{}", shop="demo.myshopify.com")
    assert fallback.external_id == "demo.myshopify.com"
    assert fallback.data == {"retain_credentials": ["client_id", "client_secret", "old_client_secret"]}
    (shop_redact,) = webhook.parse("shop/redact", b'{"shop_id": 954889, "shop_domain": "Demo.myshopify.com"}')
    assert (shop_redact.kind, shop_redact.external_id) == (StoreEventKind.SHOP_REDACTED, "demo.myshopify.com")
    request = {
        "shop_id": 954889,
        "shop_domain": "demo.myshopify.com",
        "orders_requested": [299938, 280263],
        "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
        "data_request": {"id": 9999},
    }
    (asked,) = webhook.parse("customers/data_request", json.dumps(request).encode())
    assert asked.kind is StoreEventKind.CUSTOMER_DATA_REQUESTED and asked.external_id == "demo.myshopify.com"
    assert asked.data == {
        "customer_ref": "gid://shopify/Customer/191167",
        "email": "john@example.com",
        "phone": "555-625-1199",
        "order_refs": ["gid://shopify/Order/299938", "gid://shopify/Order/280263"],
        "request_ref": "9999",
    }
    redact = {
        "shop_domain": "demo.myshopify.com",
        "customer": {"id": 191167, "email": "john@example.com", "phone": None},
        "orders_to_redact": [299938],
    }
    (erase,) = webhook.parse("customers/redact", json.dumps(redact).encode())
    assert erase.kind is StoreEventKind.CUSTOMER_REDACTED
    assert erase.data["order_refs"] == ["gid://shopify/Order/299938"] and erase.data["phone"] is None
    with pytest.raises(ValidationError):
        webhook.parse("customers/redact", b'{"shop_domain": "demo.myshopify.com"}')
    with pytest.raises(ValidationError):
        webhook.parse("shop/redact", b"{}")


def test_unknown_topics_are_permanent_errors():
    with pytest.raises(PermanentError):
        webhook.parse("carts/update", b"{}")
