"""Walmart stock on both channels, against the emulator with Storelink's app on a real server and real RQ workers.

- notifications: the emulator signs and sends them to `/webhooks/walmart/<merchant id>`; duplicates are stored
  once (eventId), reordered ones are applied once each, a wrong signature is refused;
- the polling backstop: a notification Walmart gave up on (every attempt dropped) is corrected by the
  scheduled stock reconcile;
- Walmart purchase orders: the orders poll lowers the platform's stock once per purchase order, and not again
  when the stock was read from Walmart after the order;
- platform sales for a seller not on Multichannel: Walmart's stock is lowered once, even when the attempt is
  repeated after a write whose mark was lost, and the order is confirmed with no store order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from sqlalchemy import func, select, update

from adapters.walmart import jobs as walmart_jobs
from connector.bench.shopify import create_orders
from connector.infra import runtime
from connector.infra.models import (
    EventPayload,
    InboundEvent,
    InventoryLevel,
    Order,
    OrderLine,
    SyncRun,
    Variant,
)
from connector.merchants import connect
from connector.orders import push
from connector.sandbox.walmart import WebhookFault, serve, sign
from connector.sandbox.walmart.app import Server
from connector.scheduler import build_scheduler
from connector.stock import store_orders
from tests.helpers import ServedApp, drain, sync_now
from webhooks.inbound import drain as inbound_drain

CLIENT_ID = "wm-sandbox-client"
SECRET = "wm-sandbox-secret"
ITEMS = 6


@pytest.fixture
def app(rt: runtime.Runtime) -> Iterator[ServedApp]:
    server = ServedApp(rt)
    yield server
    server.close()


class Seller:
    """An emulated Walmart seller connected through `connect.connect`, its catalog synced."""

    def __init__(self, rt: runtime.Runtime, server: Server, app: ServedApp | None) -> None:
        self.rt, self.server, self.store = rt, server, server.store
        self.node = self.store.default_ship_node
        server.store.seed_catalog(ITEMS, quantity=10)
        if self.store.mcs_enrolled:
            self.store.add_channel("Video commerce")
        connected = connect.connect(
            rt,
            "walmart",
            name="wm",
            fields={
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "seller_id": self.store.partner_id,
                "base_url": server.url,
            },
            config={"inventory_source": "ship_nodes", "location": self.node, "mcs_poll_seconds": 1},
            public_url=app.url if app else "",
            first_sync=False,
        )
        self.merchant_id = connected.merchant_id
        self.connected = connected
        assert sync_now(rt, self.merchant_id).status == "succeeded"
        self.skus = sorted(item for item in self.store.items)

    def level(self, sku: str) -> int | None:
        with self.rt.db.session() as session:
            return session.scalar(
                select(InventoryLevel.available)
                .join(Variant, Variant.id == InventoryLevel.variant_id)
                .where(Variant.merchant_id == self.merchant_id, Variant.external_id == sku)
            )

    def deliveries(self) -> list[tuple[str, str]]:
        with self.rt.db.session() as session:
            return [
                (key, status)
                for key, status in session.execute(
                    select(InboundEvent.dedupe_key, InboundEvent.status).where(
                        InboundEvent.source == "walmart", InboundEvent.merchant_id == self.merchant_id
                    )
                )
            ]

    def variant_ids(self) -> list[int]:
        with self.rt.db.session() as session:
            return list(
                session.scalars(
                    select(Variant.id)
                    .where(Variant.merchant_id == self.merchant_id)
                    .order_by(Variant.external_id)
                )
            )


def _deliver(seller: Seller) -> None:
    assert seller.server.emulator.webhooks.flush(timeout=15)
    drain(seller.rt)


def test_notifications_are_verified_deduplicated_on_event_id_and_applied_once_in_any_order(
    rt: runtime.Runtime, app: ServedApp
) -> None:
    with serve(client_id=CLIENT_ID, client_secret=SECRET, webhook_retry_delays=(0.1, 0.2)) as server:
        seller = Seller(rt, server, app)
        first, second, third = seller.skus[:3]
        server.emulator.webhooks.plan(
            WebhookFault(duplicate=True),  # first OOS: twice with one eventId
            WebhookFault(reorder=True),  # second OOS: held until the third is sent
            WebhookFault(duplicate=True),
        )
        for sku in (first, second, third):
            server.store.set_quantity(sku, 0, seller.node)
        _deliver(seller)

        attempts = server.emulator.webhooks.attempts()
        sent = [a for a in attempts if a.event_type == "INVENTORY_OOS"]
        assert len(sent) == 5  # two duplicates
        order = list(dict.fromkeys(orjson.loads(a.body)["payload"]["sku"] for a in sent))
        assert order == [first, third, second]  # the second was held until the third had gone
        assert all(a.status == 200 for a in sent)
        stored = seller.deliveries()
        assert len(stored) == 3 == len({a.event_id for a in sent})
        assert {status for _, status in stored} == {"processed"}
        assert [seller.level(sku) for sku in (first, second, third)] == [0, 0, 0]
        assert seller.level(seller.skus[3]) == 10

        # A body the client secret did not sign is refused and not stored.
        body = orjson.dumps(
            {
                "source": {
                    "eventType": "INVENTORY_OOS",
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "eventId": "x1",
                },
                "payload": {"sku": seller.skus[3], "shipNodes": []},
            }
        )
        url = f"{app.url}/webhooks/walmart/{seller.merchant_id}"
        refused = requests.post(url, data=body, headers={"Authorization": sign("wrong", body)}, timeout=5)
        assert refused.status_code == 401
        accepted = requests.post(url, data=body, headers={"Authorization": sign(SECRET, body)}, timeout=5)
        again = requests.post(url, data=body, headers={"Authorization": sign(SECRET, body)}, timeout=5)
        assert (accepted.status_code, again.status_code) == (200, 200)
        assert len(seller.deliveries()) == 4


def test_a_notification_walmart_gave_up_on_is_corrected_by_the_scheduled_reconcile(
    rt: runtime.Runtime, app: ServedApp
) -> None:
    with serve(client_id=CLIENT_ID, client_secret=SECRET, webhook_retry_delays=(0.1, 0.2)) as server:
        seller = Seller(rt, server, app)
        sku = seller.skus[1]
        server.emulator.webhooks.set_default(WebhookFault(drop=True))
        server.store.set_quantity(sku, 0, seller.node)  # OOS announced, never delivered
        server.store.set_quantity(seller.skus[2], 4, seller.node)  # no notification at all for a restock
        _deliver(seller)
        assert seller.deliveries() == []
        assert (seller.level(sku), seller.level(seller.skus[2])) == (10, 10)

        scheduled = {(job.func, job.args): job.interval for job in build_scheduler(rt).get_jobs()}
        assert scheduled[(store_orders.run_periodic, ("walmart", "stock"))] == walmart_jobs.RECONCILE_SECONDS
        assert (
            scheduled[(store_orders.run_periodic, ("walmart", "orders"))] == walmart_jobs.ORDERS_POLL_SECONDS
        )
        assert store_orders.run_periodic("walmart", "stock") == [
            seller.merchant_id
        ]  # what the scheduler runs
        drain(rt)

        assert (seller.level(sku), seller.level(seller.skus[2])) == (0, 4)
        assert seller.level(seller.skus[0]) == 10
        with rt.db.session() as session:
            updates = session.scalar(
                select(func.count()).select_from(EventPayload).where(EventPayload.type == "inventory.updated")
            )
        assert updates == 2


def test_walmart_purchase_orders_lower_platform_stock_once(rt: runtime.Runtime) -> None:
    with serve(client_id=CLIENT_ID, client_secret=SECRET) as server:
        seller = Seller(rt, server, None)
        a, b, c = seller.skus[:3]
        server.store.add_order([(a, 2), (b, 1)])
        server.store.add_order([(a, 1)])

        assert store_orders.run_periodic("walmart", "orders") == [seller.merchant_id]
        drain(rt)
        assert (seller.level(a), seller.level(b), seller.level(c)) == (7, 9, 10)

        # Polled again (the overlap reads both again): nothing applied twice.
        report = store_orders.poll_orders(seller.merchant_id)
        assert report == {"read": 2, "applied": 0, "units": 0}
        assert (seller.level(a), seller.level(b)) == (7, 9)

        # Stock read from Walmart after an order already counts it: the poll leaves it alone.
        server.store.add_order([(c, 3)])
        assert sync_now(rt, seller.merchant_id).status == "succeeded"
        assert seller.level(c) == 7  # Walmart's available to sell
        assert store_orders.poll_orders(seller.merchant_id)["applied"] == 1
        assert seller.level(c) == 7
        with rt.db.session() as session:
            keys = set(
                session.scalars(
                    select(InboundEvent.dedupe_key).where(
                        InboundEvent.source == store_orders.po_source("walmart")
                    )
                )
            )
        assert keys == {f"po:{seller.merchant_id}:{po}" for po in server.store.orders}


def test_a_purchase_order_notification_has_the_orders_read_at_once_not_the_catalog(
    rt: runtime.Runtime, app: ServedApp
) -> None:
    with serve(client_id=CLIENT_ID, client_secret=SECRET) as server:
        seller = Seller(rt, server, app)
        a = seller.skus[0]
        with rt.db.session() as session:
            runs = session.scalar(select(func.count()).select_from(SyncRun))
        server.store.add_order([(a, 4)])  # Walmart sends PO_CREATED
        _deliver(seller)  # the drain queues the orders poll, which the same worker run applies

        assert seller.level(a) == 6
        with rt.db.session() as session:
            assert session.scalar(select(func.count()).select_from(SyncRun)) == runs  # no catalog resync
            notes = session.scalars(
                select(InboundEvent.error).where(
                    InboundEvent.source == "walmart", InboundEvent.topic == "PO_CREATED"
                )
            ).all()
        assert notes == ["store orders read again"]


def test_platform_sales_of_a_seller_not_on_multichannel_lower_store_orders_once(rt: runtime.Runtime) -> None:
    with serve(client_id=CLIENT_ID, client_secret=SECRET, mcs_enrolled=False) as server:
        seller = Seller(rt, server, None)
        assert seller.connected.details["mcs_enrolled"] is False
        variant_ids = seller.variant_ids()
        ids = create_orders(rt, seller.merchant_id, variant_ids[:2], 2)
        first, second = seller.skus[:2]
        server.emulator.faults.plan(503, endpoints=["put_inventories"])  # retried by the client
        for order_id in ids:
            push.enqueue(rt, order_id)
        drain(rt)

        with rt.db.session() as session:
            units: dict[str, int] = {}
            for sku, quantity in session.execute(
                select(Variant.external_id, OrderLine.quantity)
                .join(Variant, Variant.id == OrderLine.variant_id)
                .where(OrderLine.order_id.in_(ids))
            ):
                units[sku] = units.get(sku, 0) + quantity
        assert set(units) == {first, second}
        assert server.store.nodes(first)[seller.node].input_qty == 10 - units[first]
        assert server.store.nodes(second)[seller.node].input_qty == 10 - units[second]
        assert server.store.fulfilment_orders_created == 0
        with rt.db.session() as session:
            rows = session.execute(select(Order.status, Order.store_order_ref).where(Order.id.in_(ids))).all()
            confirmed = session.scalar(
                select(func.count()).select_from(EventPayload).where(EventPayload.type == "order.confirmed")
            )
        assert rows == [("confirmed", None), ("confirmed", None)]
        assert confirmed == 2

        # Workers killed mid-sale: an attempt after them repeats only what is not recorded as done, and a
        # recorded write only while Walmart's level is still the one it was computed from.
        def interrupted(order_id: int) -> dict[str, Any]:
            with rt.db.session() as session:
                plan = session.scalars(
                    select(InboundEvent).where(
                        InboundEvent.source == store_orders.sale_source("walmart"),
                        InboundEvent.dedupe_key.endswith(f":{public[order_id]}"),
                    )
                ).one()
                body: dict[str, Any] = orjson.loads(plan.raw_body)
                for step in body["steps"]:
                    step["done"] = None
                session.execute(
                    update(InboundEvent)
                    .where(InboundEvent.id == plan.id)
                    .values(status=store_orders.PLANNED, raw_body=orjson.dumps(body))
                )
                session.execute(
                    update(Order).where(Order.id == order_id).values(status="accepted", push_started_at=None)
                )
            return {step["sku"]: step for step in body["steps"]}

        with rt.db.session() as session:
            public = dict(session.execute(select(Order.id, Order.public_id).where(Order.id.in_(ids))).all())
        # The first sale's write of `first` landed, then the second sale lowered it again: not repeated.
        interrupted(ids[0])
        # The second sale's write of `second` never reached Walmart: written now, once.
        steps = interrupted(ids[1])
        server.store.set_quantity(second, steps[second]["before"], seller.node)
        # ... and its write of `first` landed: found done.
        for order_id in ids:
            push.enqueue(rt, order_id)
        drain(rt)
        assert server.store.nodes(first)[seller.node].input_qty == 10 - units[first]
        assert server.store.nodes(second)[seller.node].input_qty == 10 - units[second]
        with rt.db.session() as session:
            statuses = session.scalars(select(Order.status).where(Order.id.in_(ids))).all()
            done = [
                {step["sku"]: step["done"] for step in orjson.loads(body)["steps"]}
                for body in session.scalars(
                    select(InboundEvent.raw_body)
                    .where(InboundEvent.source == store_orders.sale_source("walmart"))
                    .order_by(InboundEvent.id)
                )
            ]
        assert statuses == ["confirmed", "confirmed"]
        assert done == [{first: "ambiguous"}, {second: "written", first: "found"}]
        with rt.db.session() as session:  # support's replay of processed deliveries leaves these records be
            assert inbound_drain.replay(session, seller.merchant_id, statuses=("processed",)) == []
