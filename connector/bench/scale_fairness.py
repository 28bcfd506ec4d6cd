"""Benchmark `scale`, part four: one merchant's bulk resync must not hold back another merchant's orders.

A feed merchant's catalog is synced once (in the bench process, untimed), its feed is then rewritten with
every price changed, and a full resync is requested: it runs on two `storelink worker` processes listening on
the default queues in their default order, while orders for a Shopify merchant (the emulator, served in the
bench process with a bucket that never throttles) are persisted at a steady rate as checkout persists them
and queued for push. The figure is the time from persisting an order to seeing it confirmed (the store
answered), p99, against the same orders sent with the workers otherwise idle (the baseline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.bench.errors import BenchError
from connector.bench.load import percentile
from connector.bench.processes import Stack, wait_for_workers, worker_argv
from connector.bench.shopify import add_shopify_merchant, bind_variants, create_orders

logger = logging.getLogger(__name__)

DONE = ("confirmed", "rejected")


def _seeded_feed_merchant(rt: Any, feed: Path) -> int:
    """A feed merchant whose catalog is synced once from `feed` by an in-process burst worker."""
    from connector.catalog import syncs
    from connector.merchants.records import create_merchant
    from connector.worker import build_worker

    with rt.db.session() as session:
        merchant = create_merchant(session, rt.secrets, kind="feed", name="resync", config={"url": str(feed)})
        merchant_id: int = merchant.id
    run = syncs.request_sync(rt, merchant_id)
    build_worker(rt).work(burst=True, with_scheduler=False, logging_level="WARNING")
    done = syncs.get_run(rt, run.id)
    if done.status != "succeeded":
        raise BenchError(f"the resync merchant's first sync ended {done.status}: {done.error}")
    return merchant_id


def _poll(rt: Any, sent: dict[int, float], done: dict[int, tuple[float, str]]) -> None:
    from connector.infra.models import Order

    waiting = [oid for oid in sent if oid not in done]
    if not waiting:
        return
    with rt.db.session() as session:
        rows = session.execute(
            select(Order.id, Order.status).where(Order.id.in_(waiting), Order.status.in_(DONE))
        )
        seen = time.perf_counter()
        for oid, status in rows:
            done[oid] = (seen, status)


def send_orders(
    rt: Any, merchant_id: int, variant_ids: list[int], *, rate: float, minimum: int, until: Callable[[], bool]
) -> dict[str, Any]:
    """Persist and queue one order every 1/rate s until `minimum` are sent and `until()` holds; wait for
    each to be confirmed or rejected. Latency: persisted to seen done (polled every 10 ms)."""
    from connector.orders import push

    sent: dict[int, float] = {}
    done: dict[int, tuple[float, str]] = {}
    start = time.perf_counter()
    while True:
        if time.perf_counter() >= start + len(sent) / rate:
            if len(sent) >= minimum and until():
                break
            t0 = time.perf_counter()
            (order_id,) = create_orders(rt, merchant_id, variant_ids, 1)
            sent[order_id] = t0
            push.enqueue(rt, order_id)
        _poll(rt, sent, done)
        time.sleep(0.01)
    deadline = time.monotonic() + 300
    while len(done) < len(sent) and time.monotonic() < deadline:
        _poll(rt, sent, done)
        time.sleep(0.01)
    latencies = [(done[oid][0] - t0) * 1000 for oid, t0 in sent.items() if oid in done]
    return {
        "orders": len(sent),
        "confirmed": sum(1 for _, status in done.values() if status == "confirmed"),
        "unfinished": len(sent) - len(done),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "seconds": time.perf_counter() - start,
    }


def _resync_during(rt: Any, merchant_id: int, send: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Request the full resync, wait for it to start, and send orders until it ends."""
    from connector.catalog import syncs

    requested = time.perf_counter()
    run = syncs.request_sync(rt, merchant_id)
    deadline = time.monotonic() + 120
    while syncs.get_run(rt, run.id).status == "queued" and time.monotonic() < deadline:
        time.sleep(0.02)
    finished: dict[str, Any] = {}

    def over() -> bool:
        if not finished:
            status = syncs.get_run(rt, run.id).status
            if status not in syncs.ACTIVE:
                finished.update(status=status, seconds=time.perf_counter() - requested)
        return bool(finished)

    orders = send(until=over)
    return {**orders, "resync_status": finished["status"], "resync_seconds": finished["seconds"]}


def fairness(
    stack: Stack,
    rt: Any,
    workdir: Path,
    *,
    variants: int,
    rate: float,
    baseline_orders: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Orders confirmed with idle workers (baseline), then during another merchant's full resync."""
    from connector.sandbox.feeds import write_feed
    from connector.sandbox.shopify.app import serve

    feed = workdir / "resync.csv"
    with serve(maximum_available=1_000_000, restore_rate=1_000_000) as server:
        server.store.seed_catalog(10, 2, available=(1_000_000, 1_000_000))
        server.emulator.query("{ shop { name } }")  # the emulator's first document loads its schema
        shop = add_shopify_merchant(rt, server.url, "fairness-shop")
        variant_ids = bind_variants(rt, shop, server.store)
        say(f"fairness: syncing the resync merchant's {variants:,} variants once…")
        resync_merchant = _seeded_feed_merchant(rt, write_feed(feed, variants))
        write_feed(feed, variants, price_shift=1)  # the resync changes every price
        queues = ",".join(rt.settings.queue_names)
        for n in range(2):
            stack.start(f"fair-worker-{n}", worker_argv(queues))
        try:
            wait_for_workers(rt.redis, 2)
            say(f"fairness: {baseline_orders} orders at {rate:g}/s with idle workers…")
            alone = send_orders(rt, shop, variant_ids, rate=rate, minimum=baseline_orders, until=lambda: True)
            say(f"fairness: orders at {rate:g}/s during a full resync of {variants:,} variants…")
            during = _resync_during(
                rt,
                resync_merchant,
                lambda until: send_orders(rt, shop, variant_ids, rate=rate, minimum=3, until=until),
            )
        finally:
            stack.stop()
    feed.unlink()
    return {"variants": variants, "rate": rate, "baseline": alone, "during": during, "queues": queues}
