"""Stock drift: the store's stock read for every tracked variant, compared with Storelink's, and fixed.

The inventory resync (`run_inventory_resync`, a sync run of kind `inventory`) and the scheduled reconciliation
(`connector.orders.reconciliation`) both call `compare_stock`: the merchant's tracked variants are read from
the store in chunks, each level that differs from the stored home level is a drift, and (unless a dry run)
applied as a stock change stamped with the time it was read, through `connector.stock.store_events`, so the
sellable stock, its events and the stale guard work as for a store notification (a newer notification that
arrived meanwhile stands). A dry run records the differences (`diff`, op `stock`) and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select

from connector.catalog import jobs, syncs
from connector.catalog.levels import DEFAULT_LOCATION
from connector.domain.errors import PermanentError
from connector.domain.ports import Capability, StoreAdapter
from connector.domain.store_events import StoreEvent, StoreEventKind
from connector.infra import bulk_insert, runtime
from connector.infra.models import InventoryLevel, Merchant, SyncRun, Variant
from connector.infra.store_adapters import build_adapter
from connector.stock import store_events

logger = logging.getLogger(__name__)

CHUNK: Final = 500
"""Variants read from the store per request batch (and per progress step)."""
MAX_RECORDED_DIFF: Final = 1000


@dataclass
class StockCounts:
    """What one comparison found: variants compared, drifts (fixed unless a dry run), variants the store does
    not know, and the first differences (variant, sku, stored level, store level)."""

    compared: int = 0
    same: int = 0
    drift: int = 0
    fixed: int = 0
    missing: int = 0
    last_id: int = 0
    """The last variant id compared (0: none)."""
    diff: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "compared": self.compared,
            "same": self.same,
            "drift": self.drift,
            "fixed": self.fixed,
            "missing_in_store": self.missing,
        }


def _tracked(
    rt: runtime.Runtime, merchant_id: int, after: int, limit: int | None
) -> list[tuple[int, str, str | None]]:
    query = (
        select(Variant.id, Variant.external_id, Variant.sku)
        .where(
            Variant.merchant_id == merchant_id,
            Variant.id > after,
            Variant.status != "deleted",
            Variant.inventory_tracked.is_(True),
        )
        .order_by(Variant.id)
    )
    with rt.db.session() as session:
        return [(vid, ext, sku) for vid, ext, sku in session.execute(query.limit(limit))]


def _stored(rt: runtime.Runtime, ids: Sequence[int], home: str) -> dict[int, int]:
    with rt.db.session() as session:
        dialect = session.get_bind().dialect.name
        return {
            vid: available
            for vid, available in session.execute(
                select(InventoryLevel.variant_id, InventoryLevel.available).where(
                    bulk_insert.in_values(dialect, InventoryLevel.variant_id, list(ids)),
                    InventoryLevel.location_ref == home,
                )
            )
        }


def _fix(rt: runtime.Runtime, merchant_id: int, home: str, found: list[tuple[str, int]], at: datetime) -> int:
    """Apply the store's figures read at `at` as stock changes; the levels changed."""
    changes = [
        (
            position,
            [
                StoreEvent(
                    StoreEventKind.INVENTORY_CHANGED, ext, at, {"available": available, "location_ref": home}
                )
            ],
        )
        for position, (ext, available) in enumerate(found)
    ]
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None:
            raise PermanentError(f"merchant {merchant_id} no longer exists", code="merchant_not_found")
        applied = store_events.apply(session, merchant, changes)
    return sum(1 for status, _ in applied.results.values() if status == store_events.PROCESSED)


def _compare_chunk(
    rt: runtime.Runtime,
    merchant: Merchant,
    adapter: StoreAdapter,
    chunk: Sequence[tuple[int, str, str | None]],
    counts: StockCounts,
    dry_run: bool,
) -> None:
    home = merchant.location_ref or DEFAULT_LOCATION
    read_at = datetime.now(UTC)
    levels = {
        level.variant_external_id: level for level in adapter.get_inventory([ext for _, ext, _ in chunk])
    }
    stored = _stored(rt, [vid for vid, _, _ in chunk], home)
    drifted: list[tuple[str, int]] = []
    for vid, ext, sku in chunk:
        counts.compared += 1
        level = levels.get(ext)
        if level is None or level.available is None:
            counts.missing += 1
            continue
        before = stored.get(vid)
        if before == level.available:
            counts.same += 1
            continue
        counts.drift += 1
        drifted.append((ext, level.available))
        if len(counts.diff) < MAX_RECORDED_DIFF:
            counts.diff.append(
                {
                    "op": "stock",
                    "variant": ext,
                    "sku": sku,
                    "changes": {"available": [before, level.available]},
                }
            )
    if drifted and not dry_run:
        counts.fixed += _fix(rt, merchant.id, home, drifted, read_at)


def compare_stock(
    rt: runtime.Runtime,
    run: SyncRun,
    token: str,
    merchant: Merchant,
    adapter: StoreAdapter,
    *,
    report_rows: bool = True,
    after: int = 0,
    limit: int | None = None,
) -> StockCounts:
    """Compare (and fix, unless `run` is a dry run) the stock of the tracked variants with the store's, every
    one, or at most `limit` from the variant id `after` on (`last_id` says where the slice ended); progress
    is recorded on `run` as it goes (with `report_rows`, its row counters, total and `diff`)."""
    if Capability.INVENTORY_READ not in getattr(adapter, "capabilities", frozenset()):
        raise PermanentError(f"merchant {merchant.id}: its store's stock cannot be read", code="unsupported")
    variants = _tracked(rt, merchant.id, after, limit)
    counts = StockCounts(last_id=variants[-1][0] if variants else 0)
    if report_rows:
        syncs.record_progress(rt, run.id, token, total=len(variants))
    for start in range(0, len(variants), CHUNK):
        _compare_chunk(rt, merchant, adapter, variants[start : start + CHUNK], counts, run.dry_run)
        if report_rows:
            syncs.record_progress(
                rt,
                run.id,
                token,
                rows_read=counts.compared,
                updated=counts.drift,
                unchanged=counts.same,
                failed_rows=counts.missing,
                diff=counts.diff,
                details=counts.as_dict(),
            )
    logger.info(
        "store stock compared",
        extra={"merchant_id": merchant.id, "run_id": run.id, "dry_run": run.dry_run, **counts.as_dict()},
    )
    return counts


def _inventory(rt: runtime.Runtime, run: SyncRun, token: str, merchant: Merchant) -> dict[str, Any]:
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    return compare_stock(rt, run, token, merchant, adapter).as_dict()


def run_inventory_resync(run_id: int) -> dict[str, Any] | None:
    """RQ job: one recorded inventory resync (kind `inventory`)."""
    return jobs.execute(run_id, _inventory)
