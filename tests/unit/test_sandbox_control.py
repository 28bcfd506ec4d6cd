"""The emulators' control endpoints (`/_sandbox`), through the WSGI app each emulator serves: each change is
the store's own and announced as the store would (the webhook topics its listeners hear), faults reach the
faithful API, bad bodies and unknown ids are 400 and 404 JSON answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug.test import Client

from connector.sandbox import control, platform
from connector.sandbox.shopify import ShopifyEmulator
from connector.sandbox.shopify import control as shop_control
from connector.sandbox.walmart import WalmartEmulator
from connector.sandbox.walmart import control as seller_control

MONEY = {"shopMoney": {"amount": "20.00", "currencyCode": "USD"}}
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def shop() -> Iterator[tuple[ShopifyEmulator, Client, list[str]]]:
    emulator = ShopifyEmulator()
    heard: list[str] = []
    emulator.store.listeners.append(lambda topic, body, when: heard.append(topic))
    yield emulator, Client(control.mount(emulator.app, shop_control.build(emulator))), heard
    emulator.close()


@pytest.fixture
def seller() -> Iterator[tuple[WalmartEmulator, Client, list[str]]]:
    emulator = WalmartEmulator()
    heard: list[str] = []
    emulator.store.listeners.append(lambda event, payload: heard.append(event))
    yield emulator, Client(control.mount(emulator.app, seller_control.build(emulator))), heard
    emulator.close()


def _order(emulator: ShopifyEmulator) -> Any:
    variant = emulator.store.seed_catalog(1, 1, available=(10, 10))[0].variants[0]
    line = {"variantId": variant.id, "quantity": 2, "priceSet": MONEY}
    return emulator.store.create_order({"lineItems": [line]})["order"]


def test_products_are_added_changed_and_deleted_with_their_webhooks(shop) -> None:
    emulator, client, heard = shop
    made = client.post(
        "/_sandbox/products", json={"title": "Tee", "variants": [{"sku": "T-1", "price": "9.50"}]}
    )
    assert made.status_code == 201
    product_id = made.get_json()["id"]
    changed = client.patch(f"/_sandbox/products/{product_id}", json={"title": "Tee 2", "status": "DRAFT"})
    assert changed.get_json() == {"id": product_id, "title": "Tee 2", "status": "DRAFT"}
    assert client.delete(f"/_sandbox/products/{product_id}").status_code == 200
    assert heard == ["products/create", "products/update", "products/delete"]
    seeded = client.post("/_sandbox/products", json={"count": 3, "variants_per_product": 2})
    assert len(seeded.get_json()["products"]) == 3 and len(emulator.store.variants) == 6
    assert client.get("/_sandbox").get_json()["products"] == 3


def test_orders_are_fulfilled_refunded_and_cancelled_in_the_shop(shop) -> None:
    emulator, client, heard = shop
    order = _order(emulator)
    line = order.line_items[0].legacy_resource_id
    listed = client.get("/_sandbox/orders").get_json()["orders"]
    assert [o["gid"] for o in listed] == [order.id]
    fulfilled = client.post(
        f"/_sandbox/orders/{order.legacy_resource_id}/fulfil", json={"lines": {str(line): 1}}
    )
    assert fulfilled.get_json()["lines"][0]["fulfilled"] == 1
    refunded = client.post(
        f"/_sandbox/orders/{order.legacy_resource_id}/refund", json={"lines": {str(line): 1}}
    )
    assert refunded.status_code == 201 and refunded.get_json()["order"]["lines"][0]["refunded"] == 1
    assert {"fulfillments/create", "orders/partially_fulfilled", "refunds/create"} <= set(heard)
    other = _order(emulator)
    cancelled = client.post(f"/_sandbox/orders/{other.legacy_resource_id}/cancel", json={"restock": True})
    assert cancelled.get_json()["cancelled"] is True and "orders/cancelled" in heard
    again = client.post(f"/_sandbox/orders/{other.legacy_resource_id}/cancel")
    assert again.status_code == 409


def test_stock_and_faults_of_the_shop(shop) -> None:
    emulator, client, heard = shop
    variant = emulator.store.seed_catalog(1, 1, available=(10, 10))[0].variants[0]
    stock = client.post("/_sandbox/inventory", json={"variant_id": variant.id, "available": 3})
    assert stock.get_json()["available"] == 3 and heard == ["inventory_levels/update"]
    assert client.post("/_sandbox/inventory", json={"sku": "NOPE", "available": 1}).status_code == 404
    planned = client.post("/_sandbox/faults", json={"next": [{"status": 429, "retry_after": 3}, 500]})
    assert planned.get_json() == {"planned": 2}
    assert (emulator.faults.next().status, emulator.faults.next().status) == (429, 500)
    client.post("/_sandbox/faults", json={"probability": 1, "faults": [502]})
    assert emulator.faults.next().status == 502
    assert client.delete("/_sandbox/faults").status_code == 200 and emulator.faults.next().status == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[1, 2]", 400),
        (b"not json", 400),
        (b'{"next": ["soon"]}', 400),
        (b'{"next": [{"status": 500, "when": 1}]}', 400),
        (b'{"probability": 2}', 400),
    ],
)
def test_bad_bodies_are_400_with_the_reason(shop, body: bytes, status: int) -> None:
    _, client, _ = shop
    answer = client.post("/_sandbox/faults", data=body, content_type="application/json")
    assert answer.status_code == status and answer.get_json()["error"]


def test_unknown_ids_and_paths_are_404(shop) -> None:
    _, client, _ = shop
    assert client.post("/_sandbox/orders/42/fulfil").status_code == 404
    assert client.delete("/_sandbox/products/42").status_code == 404
    missing = client.get("/_sandbox/nowhere")
    assert missing.status_code == 404 and "GET /_sandbox lists them" in missing.get_json()["error"]


def test_the_seller_gets_items_stock_and_walmart_orders_with_their_notifications(seller) -> None:
    emulator, client, heard = seller
    assert client.post("/_sandbox/items", json={"count": 2, "quantity": 4}).status_code == 201
    made = client.post("/_sandbox/items", json={"sku": "WM-1", "name": "Mug", "price": 7.5, "quantity": 3})
    assert made.status_code == 201 and emulator.store.get_quantity("WM-1") == 3
    ordered = client.post("/_sandbox/orders", json={"lines": [{"sku": "WM-1", "quantity": 1}]})
    assert ordered.status_code == 201 and ordered.get_json()["purchase_order_id"] in emulator.store.orders
    emptied = client.post("/_sandbox/inventory", json={"sku": "WM-1", "quantity": 0})
    assert emptied.get_json() == {"sku": "WM-1", "quantity": 0}
    assert heard == ["PO_CREATED", "INVENTORY_OOS"]
    assert client.get("/_sandbox").get_json()["items"] == 3
    assert client.post("/_sandbox/inventory", json={"sku": "NOPE", "quantity": 1}).status_code == 404


def test_the_sellers_faults_by_endpoint_and_unknown_fulfilments(seller) -> None:
    emulator, client, _ = seller
    planned = client.post(
        "/_sandbox/faults", json={"next": [503, {"drop_after": True}], "endpoints": ["mcs_create"]}
    )
    assert planned.get_json() == {"planned": 2}
    assert emulator.faults.next("get_items").status == 200
    assert emulator.faults.next("mcs_create").status == 503 and emulator.faults.next("mcs_create").drop_after
    assert client.post("/_sandbox/faults", json={"endpoints": "mcs_create"}).status_code == 400
    assert client.post("/_sandbox/fulfilments/NOPE/ship").status_code == 404
    assert client.post("/_sandbox/fulfilments/NOPE/cancel").status_code == 404
    assert client.get("/_sandbox/fulfilments").get_json() == {"fulfilments": []}


def test_the_platform_receiver_verifies_with_a_secret_given_and_fails_as_told() -> None:
    receiver = platform.PlatformReceiver()
    client = Client(control.mount(receiver.app, platform.control(receiver)))
    assert client.post("/_sandbox/secrets", json={"secret": "hunter2"}).status_code == 400
    assert client.post("/_sandbox/secrets", json={"secret": SECRET}).status_code == 201
    body = b'{"type": "order.confirmed", "data": {"id": "ord_1"}}'

    def deliver(webhook_id: str) -> int:
        now = datetime.now(UTC)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(webhook_id, now, body.decode()),
        }
        return client.post(platform.PATH, data=body, headers=headers).status_code

    client.post("/_sandbox/faults", json={"next": [500]})
    assert (deliver("msg_1"), deliver("msg_1")) == (500, 200)
    events = client.get("/_sandbox/events?type=order.confirmed").get_json()
    assert [e["webhook_id"] for e in events["events"]] == ["msg_1"] and events["unverified"] == 0
    client.post("/_sandbox/faults", json={"default": {"status": 503, "retry_after": 5}})
    assert deliver("msg_2") == 503
    client.delete("/_sandbox/faults")
    assert deliver("msg_2") == 200
    assert client.delete("/_sandbox/events").status_code == 200
    assert client.get("/_sandbox/events").get_json()["events"] == []
    assert client.get("/_sandbox").get_json()["secrets"] == 1
