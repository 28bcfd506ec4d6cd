"""Benchmark `feed-sync`: Storelink's full catalog sync of a generated feed against a bare baseline.

The baseline stream-parses the same CSV and bulk-inserts the same products and variants with SQLAlchemy
Core: no money parsing, no diffing, no inventory levels, no events. Both run in fresh SQLite databases
(or schemas of the PostgreSQL database given), each in its own process so peak RSS is the sync's own.
"""

from __future__ import annotations

import csv
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.bench.databases import drop_fresh, fresh_url
from connector.bench.processes import in_process

TARGET_RATIO = 1.5
TARGET_RSS_MB = 300
STEP = 1_000
"""Variants per mark: a sync's per-unit latency is the time between two marks, its p99 the sync's tail."""


class Marks:
    """When a sync reached each STEP-th variant, from `start()`; `intervals_ms` are the times between marks
    (the time of a batch's write falls in the interval that waited for it)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._count = 0
        self.intervals_ms: list[float] = []

    def start(self) -> None:
        self._last = time.perf_counter()
        self._count = 0
        self.intervals_ms.clear()

    def add(self, variants: int) -> None:
        self._count += variants
        while self._count >= STEP:
            self._count -= STEP
            now = time.perf_counter()
            self.intervals_ms.append((now - self._last) * 1000)
            self._last = now

    def leave_out(self, seconds: float) -> None:
        """Take out time that is not the sync's own (the store building an export)."""
        self._last += seconds

    def p99_ms(self) -> float:
        from connector.bench.load import percentile

        return percentile(self.intervals_ms, 99)


def timed_catalog(adapter: Any, marks: Marks) -> None:
    """Mark `adapter`'s catalog as the sync consumes it: a product counts once the sync asks for the next."""
    iter_catalog = adapter.iter_catalog

    def timed(since: Any = None) -> Any:
        for product in iter_catalog(since):
            yield product
            marks.add(len(product.variants))

    adapter.iter_catalog = timed


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _engine(url: str) -> Any:
    from connector.infra.db import make_engine
    from connector.infra.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    return engine


def _insert_batch(engine: Any, products: list[dict[str, Any]], variants: list[dict[str, Any]]) -> None:
    """The baseline's write of one batch: its products, then its variants under their products' ids."""
    from sqlalchemy import insert

    from connector.infra.models import Product, Variant

    with engine.begin() as conn:
        ids = dict(
            (ext, pid)
            for pid, ext in conn.execute(
                insert(Product).returning(Product.id, Product.external_id, sort_by_parameter_order=True),
                products,
            )
        )
        for v in variants:
            v["product_id"] = ids[v.pop("group")]
        conn.execute(insert(Variant), variants)
    products.clear()
    variants.clear()


def _baseline(feed: Path, url: str, out: Any) -> None:
    from sqlalchemy import insert

    from connector.infra.models import Merchant

    engine = _engine(url)
    with engine.begin() as conn:
        merchant_id = conn.execute(
            insert(Merchant).returning(Merchant.id),
            {"kind": "feed", "store_ref": str(feed), "name": "baseline", "config": {}, "price_rules": {}},
        ).scalar_one()
    started = time.perf_counter()
    marks = Marks()
    rows = 0
    products: list[dict[str, Any]] = []
    variants: list[dict[str, Any]] = []

    with feed.open(newline="", encoding="utf-8") as fh:
        last_group = None
        for row in csv.DictReader(fh):
            rows += 1
            marks.add(1)
            group = row["item_group_id"] or row["id"]
            if group != last_group:
                if len(variants) >= 1000:
                    _insert_batch(engine, products, variants)
                products.append(
                    {
                        "merchant_id": merchant_id,
                        "external_id": group,
                        "title": row["title"],
                        "description": row["description"],
                        "url": row["link"],
                        "media": [],
                        "status": "active",
                        "content_hash": "",
                    }
                )
                last_group = group
            amount, currency = row["price"].split()
            variants.append(
                {
                    "merchant_id": merchant_id,
                    "external_id": row["id"],
                    "group": group,
                    "title": row["title"],
                    "sku": row.get("mpn"),
                    "barcode": row["gtin"],
                    "price_minor": int(amount.replace(".", "")),
                    "currency": currency,
                    "status": "active",
                    "inventory_tracked": True,
                    "options": [],
                    "content_hash": "",
                }
            )
    if variants:
        _insert_batch(engine, products, variants)
    out.put(
        {
            "seconds": time.perf_counter() - started,
            "rows": rows,
            "peak_rss_mb": _peak_rss_mb(),
            "p99_ms": marks.p99_ms(),
        }
    )
    engine.dispose()


def _storelink(feed: Path, url: str, passes: int, out: Any) -> None:
    from config.settings import load_settings
    from connector.catalog import syncs
    from connector.catalog.synchronizer import CatalogSync
    from connector.infra.crypto import SecretBox
    from connector.infra.models import SyncRun
    from connector.infra.runtime import Runtime
    from connector.infra.store_adapters import build_adapter
    from connector.merchants.records import create_merchant

    _engine(url).dispose()
    settings = load_settings(database_url=url, data_dir=feed.parent, secret_keys="", feed_allow_files=True)
    rt = Runtime(settings=settings, redis_url="redis://unused")  # the sync itself never touches Redis
    box = SecretBox.from_settings(settings)
    with rt.db.session() as session:
        merchant = create_merchant(session, box, kind="feed", name="bench", config={"url": str(feed)})
    results = []
    for _ in range(passes):
        with rt.db.session() as session:
            run = SyncRun(merchant_id=merchant.id, kind="catalog", status="queued")
            session.add(run)
            session.flush()
            run_id = run.id
        token = syncs.claim(rt, run_id)
        assert token is not None
        adapter = build_adapter(merchant, box, settings)
        marks = Marks()
        timed_catalog(adapter, marks)
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
        elapsed = time.perf_counter() - started
        results.append(
            {
                "seconds": elapsed,
                "rows": counts.rows_read,
                "events": counts.events_emitted,
                "created": counts.created,
                "unchanged": counts.unchanged,
                "p99_ms": marks.p99_ms(),
            }
        )
    out.put({"passes": results, "peak_rss_mb": _peak_rss_mb()})
    rt.close()


def _table(rows: int, database_url: str | None, baseline: dict[str, Any], storelink: dict[str, Any]) -> Table:
    """The baseline's run and Storelink's two passes."""
    first, second = storelink["passes"]
    table = Table(title=f"feed-sync, {rows:,} rows ({'SQLite' if not database_url else 'PostgreSQL'})")
    for col in ("run", "seconds", "rows/s", f"p99 ms / {STEP:,} rows", "events", "peak RSS MB"):
        table.add_column(col, justify="right" if col != "run" else "left")
    table.add_row(
        "baseline: parse + Core bulk insert",
        f"{baseline['seconds']:.2f}",
        f"{baseline['rows'] / baseline['seconds']:,.0f}",
        f"{baseline['p99_ms']:.0f}",
        "-",
        f"{baseline['peak_rss_mb']:.0f}",
    )
    table.add_row(
        "storelink: first full sync",
        f"{first['seconds']:.2f}",
        f"{first['rows'] / first['seconds']:,.0f}",
        f"{first['p99_ms']:.0f}",
        f"{first['events']:,}",
        f"{storelink['peak_rss_mb']:.0f}",
    )
    table.add_row(
        "storelink: unchanged resync",
        f"{second['seconds']:.2f}",
        f"{second['rows'] / second['seconds']:,.0f}",
        f"{second['p99_ms']:.0f}",
        f"{second['events']:,}",
        "",
    )
    return table


def run(*, rows: int, database_url: str | None, console: Console, repeat: int = 3) -> dict[str, Any]:
    """Alternate baseline and Storelink `repeat` times on fresh databases; the fastest of each counts
    (on a shared machine the minimum is the least disturbed measurement), and each round's own ratio is
    reported too (`ratio_rounds`: the spread)."""
    from connector.sandbox.feeds import write_feed

    baselines: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="storelink-bench-") as tmp:
        workdir = Path(tmp)
        feed = write_feed(workdir / "feed.csv", rows)
        console.print(f"feed: {rows:,} rows, {feed.stat().st_size / 1e6:.1f} MB; {repeat} rounds")
        for round_no in range(repeat):
            base_url = fresh_url(database_url, workdir, f"baseline{round_no}")
            sl_url = fresh_url(database_url, workdir, f"storelink{round_no}")
            try:
                baselines.append(in_process(_baseline, feed, base_url))
                runs.append(in_process(_storelink, feed, sl_url, 2))
            finally:
                drop_fresh(database_url, base_url)
                drop_fresh(database_url, sl_url)
    baseline = min(baselines, key=lambda r: r["seconds"])
    storelink = min(runs, key=lambda r: r["passes"][0]["seconds"])
    storelink["passes"][1] = min((r["passes"][1] for r in runs), key=lambda p: p["seconds"])
    storelink["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    first, second = storelink["passes"]
    ratio = first["seconds"] / baseline["seconds"]
    ratio_rounds = [
        round(r["passes"][0]["seconds"] / b["seconds"], 3) for r, b in zip(runs, baselines, strict=True)
    ]
    console.print(_table(rows, database_url, baseline, storelink))
    console.print(
        f"ratio (storelink / baseline): {ratio:.2f} (target <= {TARGET_RATIO}; each round: "
        f"{', '.join(f'{r:.2f}' for r in ratio_rounds)}); "
        f"peak RSS {storelink['peak_rss_mb']:.0f} MB (target < {TARGET_RSS_MB})"
    )
    return {
        "bench": "feed-sync",
        "rows": rows,
        "seconds": round(first["seconds"], 3),
        "rows_per_s": round(first["rows"] / first["seconds"]),
        "baseline_seconds": round(baseline["seconds"], 3),
        "p99_ms": round(first["p99_ms"], 1),
        "baseline_p99_ms": round(baseline["p99_ms"], 1),
        "resync_p99_ms": round(second["p99_ms"], 1),
        "ratio": round(ratio, 3),
        "ratio_rounds": ratio_rounds,
        "peak_rss_mb": round(storelink["peak_rss_mb"]),
        "events_first_sync": first["events"],
        "resync_seconds": round(second["seconds"], 3),
        "resync_events": second["events"],
        "rounds": repeat,
        "target_ratio": TARGET_RATIO,
        "target_peak_rss_mb": TARGET_RSS_MB,
        "meets_targets": ratio <= TARGET_RATIO and storelink["peak_rss_mb"] < TARGET_RSS_MB,
    }
