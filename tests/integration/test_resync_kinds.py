"""Inventory and orders resyncs and the scheduled reconciliation, against the Shopify emulator, through
`storelink resync` and real workers: dry runs list what they would change and write nothing, stock drift is
found and fixed, and an order the store already has is confirmed, never placed twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import select, update

from config.settings import Settings
from connector.bench.shopify import create_orders
from connector.infra import runtime
from connector.infra.models import EventPayload, Order
from connector.infra.store_adapters import build_adapter
from connector.merchants.records import get_merchant
from connector.orders import push, reconciliation
from connector.scheduler import build_scheduler
from connector.support import ops
from tests.helpers import drain
from tests.integration.ops_support import (
    Shop,
    open_keys,
    resync_served,
    run_kind,
    runtime_with,
    shopify_shop,
    stored_stock,
    variant_ids,
)


@pytest.fixture
def ops_rt(settings: Settings, redis: Redis) -> Iterator[runtime.Runtime]:
    """The runtime, with orders accepted over a second ago due for reconciliation."""
    yield from runtime_with(settings, redis, reconcile_accepted_after_seconds=1)


@pytest.fixture
def shop(ops_rt: runtime.Runtime) -> Iterator[Shop]:
    yield from shopify_shop(ops_rt)


def _table_rows(out: str, width: int) -> list[tuple[str, ...]]:
    rows = [tuple(cell.strip() for cell in line.split("│")[1:-1]) for line in out.splitlines() if "│" in line]
    return [row for row in rows if len(row) == width]


def _inventory_events(rt: runtime.Runtime) -> int:
    with rt.db.session() as session:
        return len(
            session.scalars(select(EventPayload.id).where(EventPayload.type == "inventory.updated")).all()
        )


def test_an_inventory_resync_dry_run_lists_the_differences_and_the_run_fixes_them(ops_rt, shop, cli):
    first, second, *_ = variant_ids(ops_rt, shop.merchant_id)
    shop.set_store_stock(ops_rt, first, 3)
    shop.set_store_stock(ops_rt, second, 0)
    events = _inventory_events(ops_rt)

    out = resync_served(cli, ops_rt, "shopify-shop", "--inventory", "--dry-run")

    changes = {row[3:] for row in _table_rows(out, 6) if row[0] == "stock"}
    assert changes == {("available", "10", "3"), ("available", "10", "0")}, out
    assert "stock differences │ 2" in out and "variants compared │ 6" in out
    assert (stored_stock(ops_rt, first), stored_stock(ops_rt, second)) == (10, 10)  # nothing written
    assert _inventory_events(ops_rt) == events

    out = resync_served(cli, ops_rt, "shopify-shop", "--inventory")

    assert (stored_stock(ops_rt, first), stored_stock(ops_rt, second)) == (3, 0)
    assert _inventory_events(ops_rt) == events + 2
    [run] = [
        r for r in ops.recent_runs(shop.merchant_id, rt=ops_rt) if r.kind == "inventory" and not r.dry_run
    ]
    assert (run.status, run.total, run.done, run.details["drift"], run.details["fixed"]) == (
        "succeeded",
        6,
        6,
        2,
        2,
    )
    again = resync_served(cli, ops_rt, "shopify-shop", "--inventory")
    assert "stock differences │ 0" in again


def _lost_answer(rt: runtime.Runtime, order_id: int) -> str:
    """Place the order in the store as a push attempt whose worker died before recording the answer would."""
    claimed = push.claim_attempt(rt, order_id)
    assert claimed is not None
    attempt, order, merchant = claimed
    ref = build_adapter(merchant, rt.secrets, rt.settings).create_order(order, push.push_key(order.id))
    push.release_attempt(rt, order_id, attempt)
    return ref.external_id


def _orders(rt: runtime.Runtime, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    with rt.db.session() as session:
        rows = session.execute(select(Order.id, Order.status, Order.store_order_ref).where(Order.id.in_(ids)))
        return {oid: (status, ref) for oid, status, ref in rows}


def test_an_orders_resync_confirms_what_the_store_has_and_pushes_the_rest_once(ops_rt, shop, cli):
    placed, missing = create_orders(ops_rt, shop.merchant_id, variant_ids(ops_rt, shop.merchant_id), 2)
    store_ref = _lost_answer(ops_rt, placed)
    assert len(shop.server.store.orders) == 1

    out = resync_served(cli, ops_rt, "shopify-shop", "--orders", "--dry-run")

    ops_by_order = {row[1]: row for row in _table_rows(out, 6)}
    publics = {oid: public for oid, public in _public_ids(ops_rt, [placed, missing]).items()}
    assert ops_by_order[publics[placed]][0] == "confirm" and ops_by_order[publics[missing]][0] == "push", out
    assert _orders(ops_rt, [placed, missing]) == {placed: ("accepted", None), missing: ("accepted", None)}
    assert len(shop.server.store.orders) == 1

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    out = resync_served(cli, ops_rt, "shopify-shop", "--orders", "--since", since)
    drain(ops_rt)  # the push the resync queued

    assert "found in the store │ 1" in out and "pushed             │ 1" in out, out
    final = _orders(ops_rt, [placed, missing])
    assert final[placed] == ("confirmed", store_ref)
    assert final[missing][0] == "confirmed" and final[missing][1] != store_ref
    assert len(shop.server.store.orders) == 2  # each placed once

    resync_served(cli, ops_rt, "shopify-shop", "--orders")
    drain(ops_rt)
    assert len(shop.server.store.orders) == 2


def _public_ids(rt: runtime.Runtime, ids: list[int]) -> dict[int, str]:
    with rt.db.session() as session:
        return dict(session.execute(select(Order.id, Order.public_id).where(Order.id.in_(ids))).all())


def test_scheduled_reconciliation_fixes_drift_raises_it_when_it_repeats_and_settles_old_orders(
    ops_rt, shop, cli
):
    first, second, *_ = variant_ids(ops_rt, shop.merchant_id)
    shop.set_store_stock(ops_rt, first, 4)

    run = run_kind(ops_rt, shop.merchant_id, "reconcile")

    assert run.status == "succeeded", run.error
    assert run.details["stock"]["drift"] == 1 and stored_stock(ops_rt, first) == 4
    assert "stock_drift" not in open_keys(ops_rt, shop.merchant_id)  # once is not yet a problem

    shop.set_store_stock(ops_rt, second, 7)
    (old,) = create_orders(ops_rt, shop.merchant_id, [first], 1)
    with ops_rt.db.session() as session:
        session.execute(update(Order).values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
    run = run_kind(ops_rt, shop.merchant_id, "reconcile")

    assert run.details["stock"]["drift"] == 1 and stored_stock(ops_rt, second) == 7
    assert "stock_drift" in open_keys(ops_rt, shop.merchant_id)  # drift in consecutive runs
    assert run.details["orders"]["pushed"] == 1
    drain(ops_rt)
    assert _orders(ops_rt, [old])[old][0] == "confirmed" and len(shop.server.store.orders) == 1
    shown = cli("merchants", "show", "shopify-shop")
    assert "Stock drift between the store and Storelink (stock_drift)" in shown and "reconcile" in shown

    # The store took the order's unit off its stock, and no notification said so: one more drift, fixed.
    run = run_kind(ops_rt, shop.merchant_id, "reconcile")
    assert run.details["stock"]["drift"] == 1 and stored_stock(ops_rt, first) == 3

    run = run_kind(ops_rt, shop.merchant_id, "reconcile")

    assert run.details["stock"]["drift"] == 0 and run.details["orders"]["examined"] == 0
    assert "stock_drift" not in open_keys(ops_rt, shop.merchant_id)
    assert len(shop.server.store.orders) == 1


def test_the_scheduler_job_records_one_reconciliation_per_installed_merchant(ops_rt, shop):
    scheduled = {job.func: job.interval for job in build_scheduler(ops_rt).get_jobs()}
    assert scheduled[reconciliation.schedule_all] == ops_rt.settings.reconcile_interval_seconds

    first = reconciliation.schedule_all(ops_rt)
    assert len(first) == 1 and reconciliation.schedule_all(ops_rt) == first  # one at a time per merchant
    drain(ops_rt)
    assert ops.run_progress(first[0], rt=ops_rt).status == "succeeded"


def test_resync_refuses_what_the_store_cannot_do_and_bad_options(ops_rt, shop, cli, tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_text("id,title,price,availability,quantity\n1,Tee,10.00 USD,in_stock,3\n")
    cli("merchants", "add", "feed", "--name", "acme", "--url", str(feed), "--no-sync")
    out = cli("resync", "acme", "--orders", expect=1)
    assert "its store takes no orders [resync_not_supported]" in out
    assert "--since applies to --orders" in cli("resync", "acme", "--since", "2026-01-01", expect=2)
    assert "is not an ISO 8601 time" in cli("resync", "shopify-shop", "--orders", "--since", "soon", expect=2)
    with ops_rt.db.session() as session:
        merchant_id = get_merchant(session, "acme").id
    with pytest.raises(Exception, match="unknown resync kind"):
        ops.start_resync(merchant_id, "everything", rt=ops_rt)
