"""End to end: orders pushed to the Shopify emulator by real `storelink worker` processes while the emulator
answers ~20% of requests with 5xx, timeouts or dropped connections and workers are SIGKILLed and restarted:
every order lands in the store exactly once and is confirmed once with its Shopify id."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from connector.bench.shopify import add_shopify_merchant, bind_variants, create_orders
from connector.infra import runtime
from connector.infra.models import EventPayload, Order
from connector.orders import push
from connector.sandbox.shopify.app import serve
from connector.sandbox.shopify.faults import ApiFault
from tests.helpers import ON_POSTGRESQL, Processes, process_env, push_through_killed_workers

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

ORDERS = 120
HTTP_TIMEOUT = 1.0
KILLS = 4
WORKERS = 6


def test_orders_reach_the_store_exactly_once_through_faults_and_killed_workers(
    settings: Settings, rt: runtime.Runtime, tmp_path: Path
) -> None:
    with serve(maximum_available=20_000, restore_rate=2_000) as server:
        server.store.seed_catalog(10, 4, available=(100_000, 100_000))
        merchant_id = add_shopify_merchant(rt, server.url)
        variant_ids = bind_variants(rt, merchant_id, server.store)
        ids = create_orders(rt, merchant_id, variant_ids, ORDERS)
        server.emulator.query("{ shop { name } }")  # the emulator's first document loads its schema
        server.emulator.faults.set_random(
            0.2,
            [
                ApiFault.server_error(502),
                ApiFault.server_error(503),
                ApiFault.slow(HTTP_TIMEOUT * 1.5),  # answered after the client gave up: the order may exist
                ApiFault.dropped(),
            ],
            seed=7,
        )
        env = process_env(
            settings,
            tmp_path,
            HTTP_TIMEOUT_SECONDS=str(HTTP_TIMEOUT),
            STALE_AFTER_SECONDS="10",  # the lease: an attempt (RQ stops it a second before) or a dead worker
            SWEEP_INTERVAL_SECONDS="1",
        )
        procs = Processes(env, tmp_path)
        try:
            # Usually done in about 30 s. An order whose attempts keep meeting faults backs off (2, 2, 4, 8,
            # 15, 30, 60 s …), so the bound leaves room for that tail; what is asserted does not depend on it.
            kills = push_through_killed_workers(rt, procs, ids, workers=WORKERS, kills=KILLS, within=240)
            assert kills == KILLS
        finally:
            server.emulator.faults.clear()
            procs.stop()

        store_orders = list(server.store.orders.values())

    with rt.db.session() as session:
        rows = session.execute(
            select(Order.public_id, Order.status, Order.store_order_ref, Order.push_attempts)
        )
        orders = {public_id: (status, ref, attempts) for public_id, status, ref, attempts in rows}
        confirmed_events = session.scalar(
            select(func.count()).select_from(EventPayload).where(EventPayload.type == push.ORDER_CONFIRMED)
        )
    assert len(store_orders) == ORDERS  # exactly: no order was created twice
    by_key = {o.source_identifier: o for o in store_orders}
    assert len(by_key) == ORDERS
    for public_id, (status, ref, _) in orders.items():
        assert status == "confirmed"
        assert ref == f"gid://shopify/Order/{by_key[push.push_key(public_id)].legacy_resource_id}"
    assert confirmed_events == ORDERS  # confirmed once each
    assert any(attempts > 1 for _, _, attempts in orders.values())  # the faults did make attempts repeat
