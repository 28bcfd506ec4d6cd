"""Benchmark `shopify`: order push against the Shopify emulator's cost throttle, and a bulk catalog sync.

(a) Throttle utilization: N accepted orders pushed by the real push job in two `storelink worker` processes
    to the emulator (served in this process) whose bucket starts empty. Every point the emulator charges is
    counted, so the cost of one order (lookups and `orderCreate`) is measured, and the throttle allows
    `restore_rate / cost` orders a second; utilization is the achieved rate over that. THROTTLED answers
    are counted too. The workers pace through the shop's shared rate ledger in Redis (connector.infra.rate_limits).
(b) Bulk catalog: a full sync of V variants through the Shopify adapter (bulk operation, JSONL streamed)
    against the `feed-sync` baseline (stream-parse plus Core bulk insert of the same number of variants),
    measured in the same run. The time the export takes at the store (the emulator builds it here, while
    the adapter polls) is reported apart: the ratio compares Storelink's own work with the baseline's.

The seeding helpers here (a Shopify merchant on an emulator, its variants bound, accepted orders) are also
what the end-to-end tests use.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select

from connector.bench.databases import drop_fresh, fresh_url
from connector.bench.errors import BenchError
from connector.bench.feed_sync import STEP, Marks, timed_catalog
from connector.bench.processes import Stack, in_process, service_environment, wait_for_workers, worker_argv
from connector.infra import runtime
from connector.infra.models import Order, OrderLine, Product, Variant

logger = logging.getLogger(__name__)

TARGET_UTILIZATION = 0.95
TARGET_THROTTLED = 2
TARGET_BULK_RATIO = 1.8
SHOP = "storelink-demo.myshopify.com"
TOKEN = "shpat_sandbox"  # noqa: S105 (the emulator's fixed sandbox token)


# --- seeding (shared with the end-to-end tests) ---------------------------------------------------------------


def add_shopify_merchant(rt: runtime.Runtime, base_url: str, name: str = "shopify-shop") -> int:
    """A Shopify merchant whose store is the emulator at `base_url`."""
    from connector.merchants.records import create_merchant

    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="shopify",
            name=name,
            config={"shop": SHOP, "base_url": base_url},
            credentials={"access_token": TOKEN},
        )
        return merchant.id


def bind_variants(rt: runtime.Runtime, merchant_id: int, store: Any) -> list[int]:
    """Variant rows for every variant the emulator's `store` has (as a catalog sync would write them)."""
    ids: list[int] = []
    with rt.db.session() as session:
        for product in store.products.values():
            row = Product(
                merchant_id=merchant_id,
                external_id=f"gid://shopify/Product/{product.legacy_resource_id}",
                title=product.title,
                content_hash="",
            )
            session.add(row)
            session.flush()
            for variant in product.variants:
                bound = Variant(
                    merchant_id=merchant_id,
                    product_id=row.id,
                    external_id=f"gid://shopify/ProductVariant/{variant.legacy_resource_id}",
                    title=variant.title,
                    sku=variant.sku,
                    price_minor=int(variant.price * 100),
                    currency="USD",
                    content_hash="",
                )
                session.add(bound)
                session.flush()
                ids.append(bound.id)
    return ids


def create_orders(rt: runtime.Runtime, merchant_id: int, variant_ids: list[int], count: int) -> list[int]:
    """`count` accepted orders of one or two lines each, as checkout would have persisted them."""
    with rt.db.session() as session:
        prices = {
            vid: price
            for vid, price in session.execute(
                select(Variant.id, Variant.price_minor).where(Variant.id.in_(variant_ids))
            )
        }
        order_rows = []
        for n in range(count):
            public = f"ord_{uuid.uuid4().hex[:20]}"
            order_rows.append(
                {
                    "public_id": public,
                    "merchant_id": merchant_id,
                    "platform_order_id": f"platform-{n}",
                    "idempotency_key": f"checkout-{public}",
                    "request_hash": "0" * 64,
                    "status": "accepted",
                    "currency": "USD",
                    "buyer": {"email": f"buyer{n}@example.com"},
                    "shipping_address": {},
                    "push_attempts": 0,
                }
            )
        ids = [
            row_id
            for (row_id,) in session.execute(
                insert(Order).returning(Order.id, sort_by_parameter_order=True), order_rows
            )
        ]
        lines = []
        for n, order_id in enumerate(ids):
            for k in range(1 + n % 2):
                variant = variant_ids[(n * 7 + k) % len(variant_ids)]
                lines.append(
                    {
                        "order_id": order_id,
                        "variant_id": variant,
                        "quantity": 1 + k,
                        "unit_price_minor": prices[variant],
                    }
                )
        session.execute(insert(OrderLine), lines)
    return ids


def order_counts(rt: runtime.Runtime, order_ids: list[int]) -> dict[str, int]:
    with rt.db.session() as session:
        rows = session.execute(
            select(Order.status, func.count()).where(Order.id.in_(order_ids)).group_by(Order.status)
        )
        return {status: n for status, n in rows}


# --- processes ---------------------------------------------------------------------------------------------------


class _Meter:
    """Counts what the emulator's bucket charged (points kept after refunds) and the requests it throttled."""

    def __init__(self, bucket: Any) -> None:
        self.charged = 0
        self.throttled = 0
        self._lock = threading.Lock()
        take, refund = bucket.take, bucket.refund

        def counting_take(cost: int) -> bool:
            ok: bool = take(cost)
            with self._lock:
                if ok:
                    self.charged += cost
                else:
                    self.throttled += 1
            return ok

        def counting_refund(points: int) -> None:
            refund(points)
            with self._lock:
                self.charged -= max(0, points)

        bucket.take, bucket.refund = counting_take, counting_refund


# --- (a) throttle utilization ----------------------------------------------------------------------------------


def _throttle(
    database_url: str | None,
    workdir: Path,
    *,
    orders: int,
    restore_rate: float,
    bucket: float,
    timeout: float,
) -> dict[str, Any]:
    from connector.orders import push
    from connector.sandbox.shopify.app import serve

    with (
        service_environment(database_url, workdir, "shopify", env={"LOG_LEVEL": "WARNING"}) as (env, rt, _),
        serve(maximum_available=bucket, restore_rate=restore_rate) as server,
    ):
        server.store.seed_catalog(20, 5, available=(1_000_000, 1_000_000))
        server.emulator.query("{ shop { name } }")  # the emulator's first document loads its schema
        merchant_id = add_shopify_merchant(rt, server.url)
        variant_ids = bind_variants(rt, merchant_id, server.store)
        ids = create_orders(rt, merchant_id, variant_ids, orders)
        workers = Stack(env, workdir)
        try:
            for n in range(2):
                workers.start(f"worker-{n}", worker_argv("orders"))
            wait_for_workers(rt.redis, 2)
            meter = _Meter(server.emulator.bucket)
            server.emulator.bucket.drain(0)
            started = time.perf_counter()
            for order_id in ids:
                push.enqueue(rt, order_id)
            deadline = time.monotonic() + timeout
            while True:
                counts = order_counts(rt, ids)
                if counts.get("confirmed", 0) + counts.get("rejected", 0) >= orders:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"orders not pushed within {timeout:.0f} s: {counts}")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            workers.stop()
        store_orders = len(server.store.orders)
    cost = meter.charged / orders
    allowed = restore_rate / cost
    achieved = orders / elapsed
    return {
        "orders": orders,
        "confirmed": counts.get("confirmed", 0),
        "store_orders": store_orders,
        "seconds": elapsed,
        "points": meter.charged,
        "cost_per_order": cost,
        "allowed_per_s": allowed,
        "achieved_per_s": achieved,
        "utilization": achieved / allowed,
        "throttled": meter.throttled,
    }


# --- (b) bulk catalog sync -------------------------------------------------------------------------------------


def _bulk_sync(base_url: str, url: str, data_dir: str, out: Any) -> None:
    from config.settings import load_settings
    from connector.catalog import syncs
    from connector.catalog.synchronizer import CatalogSync
    from connector.infra.crypto import SecretBox
    from connector.infra.db import make_engine
    from connector.infra.migrate import upgrade
    from connector.infra.models import SyncRun
    from connector.infra.store_adapters import build_adapter
    from connector.merchants.records import create_merchant

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = load_settings(database_url=url, data_dir=Path(data_dir), secret_keys="")
    rt = runtime.Runtime(settings=settings, redis_url="redis://unused")  # the sync itself never touches Redis
    box = SecretBox.from_settings(settings)
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            box,
            kind="shopify",
            name="bench",
            config={"shop": SHOP, "base_url": base_url},
            credentials={"access_token": TOKEN},
        )
        run = SyncRun(merchant_id=merchant.id, kind="catalog", status="queued")
        session.add(run)
        session.flush()
        run_id = run.id
    token = syncs.claim(rt, run_id)
    assert token is not None
    adapter = build_adapter(merchant, box, settings)
    adapter.bulk_signal = adapter.rate_ledger = None  # type: ignore[attr-defined]  # one process, no Redis
    marks = Marks()
    timed_catalog(adapter, marks)
    # The store's part: the export runs at the store while the adapter polls for it. Timed apart, so the
    # ratio compares what Storelink does (stream, rebuild, diff, write) with the feed baseline.
    waited = 0.0
    wait_for_bulk = adapter.wait_for_bulk  # type: ignore[attr-defined]

    def timed_wait(operation_id: str) -> str | None:
        nonlocal waited
        began = time.perf_counter()
        try:
            return wait_for_bulk(operation_id)
        finally:
            waited += time.perf_counter() - began
            marks.leave_out(time.perf_counter() - began)

    adapter.wait_for_bulk = timed_wait  # type: ignore[attr-defined]
    started = time.perf_counter()
    marks.start()
    counts = CatalogSync(
        rt.db,
        adapter,
        merchant_id=merchant.id,
        run_id=run_id,
        lease_token=token,
        batch_size=settings.sync_batch_size,
    ).run()
    out.put(
        {
            "seconds": time.perf_counter() - started - waited,
            "export_seconds": waited,
            "p99_ms": marks.p99_ms(),
            "rows": counts.rows_read,
            "created": counts.created,
            "failed": counts.failed_rows,
        }
    )
    rt.close()


def _bulk(database_url: str | None, workdir: Path, variants: int, per_product: int) -> dict[str, Any]:
    from connector.bench.feed_sync import _baseline
    from connector.sandbox.feeds import write_feed
    from connector.sandbox.shopify.app import serve

    feed = write_feed(workdir / "feed.csv", variants, variants_per_product=per_product)
    base_url = fresh_url(database_url, workdir, "bulk_baseline")
    sync_url = fresh_url(database_url, workdir, "bulk_shopify")
    try:
        baseline = in_process(_baseline, feed, base_url)
        with serve(maximum_available=2000, restore_rate=100, bulk_step_delay=0.0) as server:
            server.store.seed_catalog(variants // per_product, per_product)
            shopify = in_process(_bulk_sync, server.url, sync_url, str(workdir / "data"))
    finally:
        drop_fresh(database_url, base_url)
        drop_fresh(database_url, sync_url)
    return {"baseline": baseline, "shopify": shopify, "ratio": shopify["seconds"] / baseline["seconds"]}


# --- the command ---------------------------------------------------------------------------------------------


def run(
    *,
    orders: int,
    variants: int,
    restore_rate: float,
    bucket: float,
    database_url: str | None,
    console: Console,
) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulator's access lines
    with tempfile.TemporaryDirectory(prefix="storelink-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "data").mkdir()
        console.print(
            f"(a) {orders} orders, bucket {bucket:g} points restored at {restore_rate:g}/s, 2 workers"
        )
        push = _throttle(
            database_url,
            workdir,
            orders=orders,
            restore_rate=restore_rate,
            bucket=bucket,
            timeout=max(120.0, 4 * orders * 30 / restore_rate),
        )
        console.print(f"(b) bulk catalog sync of {variants:,} variants")
        bulk = _bulk(database_url, workdir, variants, 4)
    _print_table(console, database_url, orders, variants, push, bulk)
    meets = (
        push["utilization"] >= TARGET_UTILIZATION
        and push["throttled"] <= TARGET_THROTTLED
        and push["store_orders"] == push["confirmed"] == orders
        and bulk["shopify"]["rows"] == variants
        and bulk["ratio"] <= TARGET_BULK_RATIO
    )
    return {
        "bench": "shopify",
        "throttle_utilization": round(push["utilization"], 3),
        "throttled_answers": push["throttled"],
        "bulk_ratio": round(bulk["ratio"], 3),
        "orders": orders,
        "orders_in_store": push["store_orders"],
        "orders_confirmed": push["confirmed"],
        "orders_per_s": round(push["achieved_per_s"], 3),
        "allowed_orders_per_s": round(push["allowed_per_s"], 3),
        "points_per_order": round(push["cost_per_order"], 2),
        "restore_rate": restore_rate,
        "bucket": bucket,
        "push_seconds": round(push["seconds"], 2),
        "variants": variants,
        "bulk_seconds": round(bulk["shopify"]["seconds"], 3),
        "bulk_export_seconds": round(bulk["shopify"]["export_seconds"], 3),
        "bulk_rows": bulk["shopify"]["rows"],
        "baseline_seconds": round(bulk["baseline"]["seconds"], 3),
        "bulk_p99_ms": round(bulk["shopify"]["p99_ms"], 1),
        "baseline_p99_ms": round(bulk["baseline"]["p99_ms"], 1),
        "target_utilization": TARGET_UTILIZATION,
        "target_throttled_answers": TARGET_THROTTLED,
        "target_bulk_ratio": TARGET_BULK_RATIO,
        "meets_targets": meets,
    }


def _print_table(
    console: Console,
    database_url: str | None,
    orders: int,
    variants: int,
    push: dict[str, Any],
    bulk: dict[str, Any],
) -> None:
    """The order push's throttle use and the bulk sync's time against their references."""
    table = Table(title=f"shopify ({'SQLite' if not database_url else 'PostgreSQL'})")
    for col in ("measure", "value", "reference", "ratio"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    table.add_row(
        "(a) orders/s pushed",
        f"{push['achieved_per_s']:.2f}",
        f"{push['allowed_per_s']:.2f} allowed",
        f"{push['utilization']:.3f}",
    )
    table.add_row("(a) points per order (measured)", f"{push['cost_per_order']:.1f}", "", "")
    table.add_row("(a) THROTTLED answers", str(push["throttled"]), f"<= {TARGET_THROTTLED}", "")
    table.add_row(
        "(a) orders in the store / confirmed",
        f"{push['store_orders']} / {push['confirmed']}",
        str(orders),
        "",
    )
    table.add_row(
        "(b) the store's export (emulator) and polling (s)",
        f"{bulk['shopify']['export_seconds']:.2f}",
        "",
        "",
    )
    table.add_row(
        f"(b) bulk sync past the export, {variants:,} variants (s)",
        f"{bulk['shopify']['seconds']:.2f}",
        f"{bulk['baseline']['seconds']:.2f} baseline",
        f"{bulk['ratio']:.2f}",
    )
    table.add_row(
        f"(b) p99 ms per {STEP:,} variants",
        f"{bulk['shopify']['p99_ms']:.0f}",
        f"{bulk['baseline']['p99_ms']:.0f} baseline",
        "",
    )
    console.print(table)
