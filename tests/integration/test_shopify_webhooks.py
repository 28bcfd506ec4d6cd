"""Shopify webhooks sent by the emulator to `/webhooks/shopify`, stored, drained by the real worker, applied.

The app runs on a real HTTP server; the emulated shop signs and sends every delivery itself (duplicates and
delays injected by its fault plan). Stock webhooks are resolved to variants through the inventory item refs
the catalog sync stored, compliance topics find and redact customer data, and an uninstall purges tokens.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from connector.infra import (
    export_signals,
    runtime,
    schema,
)
from connector.infra.db import make_engine
from connector.infra.models import (
    InboundEvent,
    InventoryLevel,
    Merchant,
    Order,
    Product,
    Reservation,
    Variant,
)
from connector.infra.store_adapters import build_adapter
from connector.merchants.privacy import REDACTED
from connector.merchants.records import create_merchant
from connector.sandbox.shopify import Server, WebhookFault, serve, sign
from tests.helpers import ServedApp, drain, sync_now
from webhooks.inbound import receiver

TOPICS = (
    "inventory_levels/update",
    "products/update",
    "app/uninstalled",
    "customers/data_request",
    "customers/redact",
    "shop/redact",
    "bulk_operations/finish",
)


@pytest.fixture
def app(rt: runtime.Runtime) -> Iterator[ServedApp]:
    server = ServedApp(rt)
    yield server
    server.close()


class Shop:
    """An emulated shop connected as a Shopify merchant whose catalog has been synced."""

    def __init__(self, rt: runtime.Runtime, server: Server, app: ServedApp, *, location: bool = True) -> None:
        self.rt, self.server, self.store = rt, server, server.store
        self.emulator = server.emulator
        client = self.emulator.client
        self.secret = client.client_secret
        config: dict[str, Any] = {"shop": self.store.shop.myshopify_domain, "base_url": server.url}
        if location:
            config["location"] = str(self.store.primary_location.legacy_resource_id)
        with rt.db.session() as session:
            merchant = create_merchant(
                session,
                rt.secrets,
                kind="shopify",
                name="shop",
                config=config,
                credentials={
                    "access_token": "shpat_sandbox",
                    "client_id": client.client_id,
                    "client_secret": self.secret,
                },
            )
            self.merchant_id = merchant.id
        run = sync_now(rt, self.merchant_id)
        assert run.status == "succeeded", run.error
        self.endpoint = f"{app.url}/webhooks/shopify"
        for topic in TOPICS:
            self.emulator.webhooks.subscribe(topic, self.endpoint)

    def send(self, topic: str, body: dict[str, Any]) -> None:
        """Have the shop send one delivery of `topic` (for topics the emulated shop has no trigger for)."""
        self.emulator.webhooks.dispatch(topic, body, self.store.now())
        assert self.emulator.webhooks.flush(20)

    def levels(self) -> dict[str, tuple[int, str]]:
        """(available, location) of each variant by inventory item ref."""
        with self.rt.db.session() as session:
            rows = session.execute(
                select(Variant.inventory_item_ref, InventoryLevel.available, InventoryLevel.location_ref)
                .join(InventoryLevel, InventoryLevel.variant_id == Variant.id)
                .where(Variant.merchant_id == self.merchant_id)
            )
            return {item: (available, location) for item, available, location in rows}

    def inbound(self, topic: str | None = None) -> list[tuple[str, str | None]]:
        with self.rt.db.session() as session:
            query = select(InboundEvent.status, InboundEvent.error).where(
                InboundEvent.merchant_id == self.merchant_id
            )
            if topic is not None:
                query = query.where(InboundEvent.topic == topic)
            return [(status, note) for status, note in session.execute(query.order_by(InboundEvent.id))]

    def merchant(self) -> tuple[str, dict[str, str]]:
        with self.rt.db.session() as session:
            merchant = session.get(Merchant, self.merchant_id)
            assert merchant is not None
            return merchant.status, self.rt.secrets.decrypt(merchant.credentials_encrypted)


@pytest.fixture
def shop(rt: runtime.Runtime, app: ServedApp) -> Iterator[Shop]:
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(14, 3, available=(0, 50))
        yield Shop(rt, server, app)


def _item_ids(shop: Shop) -> list[int]:
    return sorted(shop.store.inventory_items)


def test_catalog_sync_stores_inventory_item_refs(shop: Shop):
    levels = shop.levels()
    assert len(levels) == 42
    assert all(item.startswith("gid://shopify/InventoryItem/") for item in levels)
    home = f"gid://shopify/Location/{shop.store.primary_location.legacy_resource_id}"
    assert {location for _, location in levels.values()} == {home}


CHANGES = 400  # stock changes over 40 items: 10 each, delivered shuffled, 3 in 10 twice


def test_shuffled_and_duplicated_stock_webhooks_leave_the_newest_level(shop: Shop):
    items = _item_ids(shop)[:40]
    faults = [WebhookFault(duplicate=True, delay=d) for d in (0.0, 0.15, 0.3)] + [
        WebhookFault(delay=d) for d in (0.0, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4)
    ]
    shop.emulator.webhooks.set_random(1.0, faults, seed=7)  # 3 in 10 deliveries are sent twice
    rng = random.Random(11)
    newest: dict[int, int] = {}
    for change in range(CHANGES):
        item = items[change % len(items)]
        newest[item] = rng.randint(0, 500)
        shop.store.set_inventory(item, None, newest[item])
    # Drain while deliveries still arrive, so late ones with older times meet newer stored stock.
    while not shop.emulator.webhooks.flush(timeout=1.0):
        drain(shop.rt)
    drain(shop.rt)

    attempts = shop.emulator.webhooks.attempts()
    duplicates = len(attempts) - CHANGES
    assert 0.2 * CHANGES <= duplicates <= 0.4 * CHANGES, duplicates  # about 30 %
    assert all(a.status == 200 for a in attempts)
    latest: dict[bytes, str] = {}
    late = 0
    for attempt in attempts:  # arrivals older than one already delivered for the same item
        key = attempt.body.split(b',"location_id"')[0]
        stamp = attempt.headers["X-Shopify-Triggered-At"]
        late += stamp < latest.get(key, "")
        latest[key] = max(stamp, latest.get(key, ""))
    assert late > CHANGES // 20, late
    levels = shop.levels()
    for item, quantity in newest.items():
        assert levels[f"gid://shopify/InventoryItem/{item}"][0] == quantity, item
    statuses = shop.inbound("inventory_levels/update")
    assert len(statuses) == CHANGES  # every duplicate was acknowledged, not stored
    assert {status for status, _ in statuses} <= {"processed", "skipped"}
    assert all(note == "stock updated" or note.startswith("stale: ") for _, note in statuses if note)
    assert any(status == "skipped" for status, _ in statuses)  # the stale guard had work to do


def test_a_late_delivery_never_overwrites_newer_stock(shop: Shop):
    item = _item_ids(shop)[0]
    shop.store.set_inventory(item, None, 5)
    assert shop.emulator.webhooks.flush(10)
    old = shop.emulator.webhooks.attempts()[-1]
    shop.store.set_inventory(item, None, 9)
    assert shop.emulator.webhooks.flush(10)
    drain(shop.rt)
    # The first change again, as a new delivery (a store resending it): older than what is stored.
    headers = {**old.headers, "X-Shopify-Webhook-Id": "resent-1"}
    assert requests.post(shop.endpoint, data=old.body, headers=headers, timeout=10).status_code == 200
    drain(shop.rt)
    assert shop.levels()[f"gid://shopify/InventoryItem/{item}"][0] == 9
    assert shop.inbound("inventory_levels/update")[-1][0] == "skipped"


def test_stock_at_another_location_is_not_applied(shop: Shop):
    item = _item_ids(shop)[1]
    before = shop.levels()[f"gid://shopify/InventoryItem/{item}"]
    elsewhere = shop.store.add_location("Pop-up store")
    shop.store.set_inventory(item, elsewhere.legacy_resource_id, 77)
    assert shop.emulator.webhooks.flush(10)
    drain(shop.rt)
    assert shop.levels()[f"gid://shopify/InventoryItem/{item}"] == before
    (status, note), *_ = shop.inbound("inventory_levels/update")
    assert status == "skipped" and note is not None and "not at gid://shopify/Location/" in note


def test_stock_of_an_item_the_catalog_has_not_seen_waits_for_it(shop: Shop):
    product = shop.store.add_product("New arrival", variants=[{"sku": "NEW-1", "available": 2}], notify=False)
    item = product.variants[0].inventory_item.legacy_resource_id
    shop.store.set_inventory(item, None, 6)
    assert shop.emulator.webhooks.flush(10)
    drain(shop.rt)
    assert shop.inbound() == [
        ("skipped", f"no variant with inventory item gid://shopify/InventoryItem/{item}")
    ]


def test_a_merchant_selling_every_location_gets_the_sum(rt: runtime.Runtime, app: ServedApp):
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(2, 2, available=(10, 10))
        shop = Shop(rt, server, app, location=False)
        item = _item_ids(shop)[0]
        assert shop.levels()[f"gid://shopify/InventoryItem/{item}"] == (10, "default")
        second = shop.store.add_location("Second warehouse")
        shop.store.set_inventory(item, second.legacy_resource_id, 4)
        shop.store.set_inventory(item, None, 7)
        assert shop.emulator.webhooks.flush(10)
        drain(rt)
        assert shop.levels()[f"gid://shopify/InventoryItem/{item}"] == (11, "default")
        assert [note for _, note in shop.inbound()] == ["stock updated (summed over locations)"] * 2


def test_bad_signatures_are_401_and_store_nothing(shop: Shop):
    body = b'{"inventory_item_id": 1, "location_id": 2, "available": 3}'
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "inventory_levels/update",
        "X-Shopify-Shop-Domain": shop.store.shop.myshopify_domain,
        "X-Shopify-Webhook-Id": "forged-1",
        "X-Shopify-Triggered-At": "2026-11-03T10:00:00.000000000Z",
    }
    for signature in (sign("not-the-secret", body), "", "%%%"):
        answer = requests.post(
            shop.endpoint, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": signature}, timeout=10
        )
        assert answer.status_code == 401, answer.text
    tampered = body.replace(b'"available": 3', b'"available": 9')
    answer = requests.post(
        shop.endpoint,
        data=tampered,
        headers={**headers, "X-Shopify-Hmac-Sha256": sign(shop.secret, body)},
        timeout=10,
    )
    assert answer.status_code == 401
    assert shop.inbound() == []


def _orders(shop: Shop) -> dict[str, Order]:
    rows = {
        "ord_john1": (
            "gid://shopify/Order/299938",
            {"email": "John@Example.com", "name": "John Doe", "phone": "+1 555-625-1199"},
        ),
        "ord_john2": (None, {"email": "john@example.com", "name": "John Doe"}),
        "ord_john3": (None, {"email": "jd@work.example", "name": "J. Doe", "phone": "+1 (555) 625-1199"}),
        "ord_jane": ("gid://shopify/Order/400001", {"email": "jane@example.com", "name": "Jane Roe"}),
    }
    with shop.rt.db.session() as session:
        for public_id, (ref, buyer) in rows.items():
            session.add(
                Order(
                    public_id=public_id,
                    merchant_id=shop.merchant_id,
                    idempotency_key=public_id,
                    request_hash="0" * 64,
                    currency="USD",
                    total_minor=1000,
                    buyer=buyer,
                    shipping_address={"name": buyer["name"], "line1": "1 Main St", "city": "Ottawa"},
                    store_order_ref=ref,
                    response_body={"customer": buyer["email"]},
                )
            )
        session.flush()
        variant_id = session.scalars(
            select(Variant.id).where(Variant.merchant_id == shop.merchant_id)
        ).first()
        assert variant_id is not None
        for public_id in rows:
            order_id = session.scalar(select(Order.id).where(Order.public_id == public_id))
            session.add(
                Reservation(
                    id=f"rsv_{public_id}",
                    merchant_id=shop.merchant_id,
                    variant_id=variant_id,
                    order_id=order_id,
                    buyer_ref=public_id.removeprefix("ord_"),
                    quantity=1,
                    state="confirmed",
                )
            )
    return _stored_orders(shop)


def _hold_buyers(shop: Shop) -> dict[str, str | None]:
    """The buyer each order's hold names."""
    with shop.rt.db.session() as session:
        rows = session.execute(
            select(Order.public_id, Reservation.buyer_ref).join(Order, Order.id == Reservation.order_id)
        ).all()
    return {public_id: buyer_ref for public_id, buyer_ref in rows}


def _stored_orders(shop: Shop) -> dict[str, Order]:
    with shop.rt.db.session() as session:
        found = session.scalars(select(Order).where(Order.merchant_id == shop.merchant_id)).all()
        session.expunge_all()
        return {order.public_id: order for order in found}


def test_compliance_topics_find_and_redact_customer_data(shop: Shop):
    _orders(shop)
    domain = shop.store.shop.myshopify_domain
    customer = {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"}
    shop.send(
        "customers/data_request",
        {
            "shop_id": 1,
            "shop_domain": domain,
            "orders_requested": [299938],
            "customer": customer,
            "data_request": {"id": 9999},
        },
    )
    drain(shop.rt)
    ((status, note),) = shop.inbound("customers/data_request")
    assert status == "processed" and note is not None
    assert "3 order(s)" in note and "ord_jane" not in note
    assert all(f"ord_john{n}" in note for n in (1, 2, 3))
    assert "buyer.email" in note and "shipping_address.line1" in note
    assert _stored_orders(shop)["ord_john1"].buyer["name"] == "John Doe"  # a request changes nothing

    shop.send("customers/redact", {"shop_domain": domain, "customer": customer, "orders_to_redact": [299938]})
    drain(shop.rt)
    orders = _stored_orders(shop)
    for public_id in ("ord_john1", "ord_john2", "ord_john3"):
        assert set(orders[public_id].buyer.values()) == {REDACTED}
        assert set(orders[public_id].shipping_address.values()) == {REDACTED}
        assert orders[public_id].response_body is None
        assert orders[public_id].total_minor == 1000
    assert orders["ord_jane"].buyer["email"] == "jane@example.com"
    assert _hold_buyers(shop) == {"ord_john1": None, "ord_john2": None, "ord_john3": None, "ord_jane": "jane"}
    assert shop.inbound("customers/redact")[0][0] == "processed"


def test_uninstall_purges_tokens_and_shop_redact_still_arrives(shop: Shop):
    _orders(shop)
    domain = shop.store.shop.myshopify_domain
    shop.send("app/uninstalled", {"id": 1, "name": "Storelink Demo", "myshopify_domain": domain})
    drain(shop.rt)
    status, credentials = shop.merchant()
    assert status == "uninstalled"
    assert "access_token" not in credentials and "refresh_token" not in credentials
    assert credentials == {"client_id": shop.emulator.client.client_id, "client_secret": shop.secret}

    # Work stops: a stock change after the uninstall is not applied.
    item = _item_ids(shop)[0]
    before = shop.levels()[f"gid://shopify/InventoryItem/{item}"]
    shop.store.set_inventory(item, None, 321)
    assert shop.emulator.webhooks.flush(10)
    drain(shop.rt)
    assert shop.levels()[f"gid://shopify/InventoryItem/{item}"] == before
    assert shop.inbound("inventory_levels/update") == [("skipped", "merchant uninstalled")]

    # 48 hours later: shop/redact is signed with the app secret, still verifies, and erases every buyer.
    receiver.merchants.clear()
    shop.send("shop/redact", {"shop_id": 1, "shop_domain": domain})
    assert shop.emulator.webhooks.attempts()[-1].status == 200
    drain(shop.rt)
    assert shop.inbound("shop/redact")[0] == ("processed", "shop data redacted: 4 order(s)")
    for order in _stored_orders(shop).values():
        assert set(order.buyer.values()) == {REDACTED} and set(order.shipping_address.values()) == {REDACTED}
    assert set(_hold_buyers(shop).values()) == {None}
    with shop.rt.db.session() as session:
        bodies = session.scalars(
            select(InboundEvent.raw_body).where(
                InboundEvent.merchant_id == shop.merchant_id, InboundEvent.topic != "shop/redact"
            )
        ).all()
        assert bodies and all(body == b"" for body in bodies)


def test_a_finished_bulk_export_is_announced_to_the_sync_waiting_on_it(shop: Shop):
    adapter = build_adapter(_merchant_row(shop), shop.rt.secrets, shop.rt.settings, redis=shop.rt.redis)
    operation = adapter.start_bulk_catalog()
    deadline = time.monotonic() + 20
    while not adapter.bulk_status(operation).done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert shop.emulator.webhooks.flush(20)  # the emulated shop sent bulk_operations/finish
    drain(shop.rt)

    assert shop.inbound("bulk_operations/finish") == [("processed", "bulk operation COMPLETED")]
    assert shop.rt.redis.llen(export_signals.key(shop.merchant_id, operation)) == 1
    waits: list[bool] = []
    signal = adapter.bulk_signal
    adapter.bulk_signal = lambda op, timeout: waits.append(signal(op, timeout)) or waits[-1]
    assert adapter.wait_for_bulk(operation) is not None
    assert waits in ([], [True])  # the export may be COMPLETED at the first poll already
    other = export_signals.waiter(lambda: shop.rt.redis, shop.merchant_id)
    started = time.monotonic()
    assert other("gid://shopify/BulkOperation/999999", 0.2) is False
    assert time.monotonic() - started >= 0.15  # no word: the wait lasts its poll delay


def test_product_updates_refresh_the_product(shop: Shop):
    product = next(iter(shop.store.products.values()))
    shop.store.update_product(product.legacy_resource_id, title="Renamed by the merchant")
    assert shop.emulator.webhooks.flush(10)
    drain(shop.rt)
    with shop.rt.db.session() as session:
        title = session.scalar(
            select(Product.title).where(
                Product.merchant_id == shop.merchant_id,
                Product.external_id == f"gid://shopify/Product/{product.legacy_resource_id}",
            )
        )
    assert title == "Renamed by the merchant"
    assert shop.inbound("products/update")[0][0] == "processed"


def test_models_and_migrations_agree(database_url: str):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def _merchant_row(shop: Shop) -> Merchant:
    with shop.rt.db.session() as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        session.expunge(merchant)
        return merchant
