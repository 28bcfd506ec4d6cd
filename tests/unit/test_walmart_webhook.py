"""Walmart notifications: HMAC and basic-auth verification, the `source`/`payload` envelope, event parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from adapters.walmart import webhook
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.store_events import StoreEventKind

SECRET = "client-secret-value"
HEADER = "Authorization"

PO_CREATED = {
    "source": {
        "eventType": "PO_CREATED",
        "eventTime": "2020-07-29T13:47:18.442Z",
        "eventId": "04d868a0-d1a2-11ea-a710-459752d002e8",
    },
    "payload": {
        "partnerId": "10000682332",
        "purchaseOrderId": "1796277083022",
        "customerOrderId": "5281956426648",
        "orderDate": "2020-07-29T13:47:10.000Z",
        "orderLines": [
            {
                "lineNumber": "1",
                "sku": "SKU-1",
                "productName": "Vest",
                "quantity": {"unitOfMeasure": "EACH", "measurementValue": "1"},
                "status": "CREATED",
                "shipNodeType": "SellerFulfilled",
            },
            {
                "lineNumber": "2",
                "sku": "SKU-2",
                "quantity": {"unitOfMeasure": "EACH", "measurementValue": "2"},
            },
            {
                "lineNumber": "3",
                "sku": "SKU-1",
                "quantity": {"unitOfMeasure": "EACH", "measurementValue": "1"},
            },
        ],
    },
}

INVENTORY_OOS = {
    "source": {"eventType": "INVENTORY_OOS", "eventTime": "2026-11-03T12:00:00Z", "eventId": "inv-1"},
    "payload": {
        "itemId": "123",
        "sku": "SKU 1",
        "productName": "Vest",
        "shipNodes": [
            {"availToSellQty": 0, "shipNode": "100009", "shipNodeName": "East"},
            {"availToSellQty": "2", "shipNode": "100010", "shipNodeName": "West"},
        ],
    },
}


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


def signed(body: bytes, *, encoding: str = "hex", secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return {"authorization": value}


def test_hmac_of_the_raw_body_with_the_client_secret_verifies_hex_or_base64():
    body = raw(PO_CREATED)
    assert webhook.verify_hmac(SECRET, HEADER, signed(body), body)
    assert webhook.verify_hmac(SECRET, HEADER, signed(body, encoding="base64"), body)
    upper = {"authorization": signed(body)["authorization"].upper()}
    assert webhook.verify_hmac(SECRET, HEADER, upper, body)
    prefixed = {"authorization": "HMAC " + signed(body)["authorization"]}
    assert webhook.verify_hmac(SECRET, HEADER, prefixed, body)
    assert webhook.signature(SECRET, body) == signed(body)["authorization"]


def test_hmac_refuses_wrong_secret_tampered_body_and_missing_header():
    body = raw(PO_CREATED)
    assert not webhook.verify_hmac(SECRET, HEADER, signed(body, secret="other"), body)
    tampered = body.replace(b"SKU-2", b"SKU-3")
    assert not webhook.verify_hmac(SECRET, HEADER, signed(body), tampered)
    assert not webhook.verify_hmac(SECRET, HEADER, {}, body)
    assert not webhook.verify_hmac(SECRET, HEADER, {"authorization": ""}, body)
    assert not webhook.verify_hmac(SECRET, "x-walmart-signature", signed(body), body)  # another header
    assert not webhook.verify_hmac(None, HEADER, signed(body), body)
    assert not webhook.verify_hmac("", HEADER, signed(body, secret=""), body)


def test_hmac_verification_never_raises_on_junk():
    assert not webhook.verify_hmac(SECRET, HEADER, {"authorization": "é∂ƒ"}, b"\xff")
    assert not webhook.verify_hmac(SECRET, HEADER, {"authorization": "AAAA"}, "text")  # type: ignore[arg-type]
    assert not webhook.verify_hmac(SECRET, HEADER, {None: 1}, b"{}")  # type: ignore[dict-item]


def test_basic_auth_deliveries_with_or_without_the_scheme():
    token = base64.b64encode(b"walmart:s3cret").decode()
    assert webhook.verify_basic("walmart", "s3cret", HEADER, {"authorization": f"Basic {token}"})
    assert webhook.verify_basic("walmart", "s3cret", HEADER, {"Authorization": token})
    assert not webhook.verify_basic("walmart", "other", HEADER, {"authorization": f"Basic {token}"})
    assert not webhook.verify_basic("walmart", "s3cret", HEADER, {})
    assert not webhook.verify_basic("walmart", "s3cret", HEADER, {"authorization": "Basic !!!"})
    assert not webhook.verify_basic(None, None, HEADER, {"authorization": token})


def test_envelope_reads_event_id_type_and_time():
    found = webhook.envelope(raw(PO_CREATED))
    assert found.delivery_id == "04d868a0-d1a2-11ea-a710-459752d002e8"
    assert found.topic == "PO_CREATED"
    assert found.triggered_at == datetime(2020, 7, 29, 13, 47, 18, 442000, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[]",
        b"\xff\xfe",
        raw({"payload": {}}),
        raw({"source": {"eventType": "PO_CREATED"}, "payload": {}}),
        raw({"source": {"eventId": "1"}, "payload": {}}),
        raw({"source": {"eventId": "1", "eventType": "BUY_BOX_CHANGED"}, "payload": {}}),
        raw({"source": {"eventId": "1", "eventType": "PO_CREATED", "eventTime": "later"}, "payload": {}}),
        raw({"source": {"eventId": "1", "eventType": "PO_CREATED"}}),
        raw({"source": {"eventId": "1", "eventType": "INVENTORY_OOS"}, "payload": {"shipNodes": []}}),
        raw({"source": {"eventId": "x" * 300, "eventType": "PO_CREATED"}, "payload": {}}),
    ],
)
def test_malformed_envelopes_are_validation_errors(body):
    with pytest.raises(ValidationError):
        webhook.envelope(body)


def test_walmart_orders_ask_for_the_orders_to_be_read_again():
    events = webhook.parse("PO_CREATED", raw(PO_CREATED))
    assert [(e.kind, e.external_id) for e in events] == [(StoreEventKind.STORE_ORDER_PLACED, "1796277083022")]
    assert events[0].data == {
        "event_type": "PO_CREATED",
        "purchase_order_id": "1796277083022",
        "skus": ["SKU-1", "SKU-2"],
    }
    assert events[0].occurred_at == datetime(2020, 7, 29, 13, 47, 18, 442000, tzinfo=UTC)
    updates = {**PO_CREATED, "source": {**PO_CREATED["source"], "eventType": "ORDER_UPDATES"}}
    updates["payload"] = {**PO_CREATED["payload"], "subEventType": "PO_LINE_AUTOCANCELLED"}
    assert webhook.parse("ORDER_UPDATES", raw(updates))[0].data["event_type"] == "PO_LINE_AUTOCANCELLED"


def test_out_of_stock_sums_the_nodes_or_names_each_one():
    summed = webhook.parse("INVENTORY_OOS", raw(INVENTORY_OOS))
    assert len(summed) == 1
    assert summed[0].kind is StoreEventKind.INVENTORY_CHANGED and summed[0].external_id == "SKU 1"
    assert summed[0].data["available"] == 2 and "location_ref" not in summed[0].data
    per_node = webhook.parse("INVENTORY_OOS", raw(INVENTORY_OOS), ship_node="100009")
    assert [(e.data["location_ref"], e.data["available"]) for e in per_node] == [("100009", 0), ("100010", 2)]
    empty = {**INVENTORY_OOS, "payload": {"sku": "SKU 1"}}
    assert webhook.parse("INVENTORY_OOS", raw(empty))[0].data["available"] == 0


def test_offer_events_are_product_changes():
    body = {
        "source": {"eventType": "OFFER_UNPUBLISHED", "eventTime": "2026-11-03T12:00:00Z", "eventId": "o-1"},
        "payload": {"sku": "SKU-9", "publishStatus": "UNPUBLISHED", "lifecycleStatus": "ACTIVE"},
    }
    [event] = webhook.parse("OFFER_UNPUBLISHED", raw(body))
    assert (event.kind, event.external_id) == (StoreEventKind.PRODUCT_CHANGED, "SKU-9")


def mcs(event_type: str, payload: dict) -> bytes:
    return raw(
        {
            "source": {"eventType": event_type, "eventTime": "2026-11-03T12:00:00Z", "eventId": "m"},
            "payload": payload,
        }
    )


def test_multichannel_status_updates_become_order_events():
    shipped = {
        "partnerId": "1",
        "originSystemOrderId": "SLABCDEF",
        "orderChannelId": "C1",
        "lineItemStatus": [
            {"sellerLineId": "1", "itemDetail": {"sku": "A"}, "itemStatus": [{"qty": 1, "status": "Shipped"}]}
        ],
        "shipmentDetails": [
            {"trackingNumber": "1Z999", "carrier": "UPS", "trackingUrl": "https://track/1Z999"}
        ],
    }
    [event] = webhook.parse("ORDER_STATUS_UPDATE", mcs("ORDER_STATUS_UPDATE", shipped))
    assert (event.kind, event.external_id) == (StoreEventKind.ORDER_FULFILLED, "SLABCDEF")
    assert event.data["tracking"] == [{"number": "1Z999", "company": "UPS", "url": "https://track/1Z999"}]

    cancelled = {**shipped, "lineItemStatus": [{"sellerLineId": "1", "itemStatus": [{"status": "Canceled"}]}]}
    cancelled.pop("shipmentDetails")
    [event] = webhook.parse("ORDER_STATUS_UPDATE", mcs("ORDER_STATUS_UPDATE", cancelled))
    assert event.kind is StoreEventKind.ORDER_CANCELLED

    acknowledged = {
        **cancelled,
        "lineItemStatus": [{"sellerLineId": "1", "itemStatus": [{"status": "Acknowledged"}]}],
    }
    assert webhook.parse("ORDER_STATUS_UPDATE", mcs("ORDER_STATUS_UPDATE", acknowledged)) == []

    [event] = webhook.parse(
        "ORDER_SHIPMENT_UPDATE", mcs("ORDER_SHIPMENT_UPDATE", {**shipped, "lineItemStatus": []})
    )
    assert event.kind is StoreEventKind.ORDER_FULFILLED

    with pytest.raises(ValidationError):
        webhook.parse("ORDER_STATUS_UPDATE", mcs("ORDER_STATUS_UPDATE", {"lineItemStatus": []}))


def test_unknown_topics_are_permanent_errors():
    with pytest.raises(PermanentError):
        webhook.parse("products/update", b"{}")


def test_subscription_entries():
    entry = webhook.subscription(
        "PO_CREATED", "ORDER", "https://x/webhooks/walmart/1", {"authMethod": "HMAC"}
    )
    assert entry["eventVersion"] == "V1" and entry["status"] == "ACTIVE"
    assert entry["authDetails"] == {"authMethod": "HMAC"}
    assert webhook.subscriptions_of({"events": [{"subscriptionId": "1"}, "x"]}) == [{"subscriptionId": "1"}]
    assert webhook.subscriptions_of(None) == []


def test_out_of_stock_without_nodes_is_zero_at_the_merchants_node():
    empty = {**INVENTORY_OOS, "payload": {"sku": "SKU 1"}}
    [event] = webhook.parse("INVENTORY_OOS", raw(empty), ship_node="100009")
    assert event.data == {"available": 0, "location_ref": "100009", "event_type": "INVENTORY_OOS"}
