"""Store stock kept true on both channels: platform sales off the store, store orders off the platform.

The jobs are the core's; what they ask of a store comes through optional adapter surfaces
(`connector.domain.ports`): `ReducesStockForSale`, `ListsStoreOrders`, and the `PeriodicJob`s a kind declares.
Three jobs share one rule: a unit is never sold twice, and no retry, duplicate or killed worker applies a
change twice.

- **Platform sales for stores that take no orders** (`take_off_store_stock`, called by the order push job
  when the merchant's adapter cannot take orders but can write stock). The sale is recorded once (an
  `InboundEvent` row keyed by the order); per SKU, under a lock, the store's level is read, the lowered level
  recorded (committed) before it is written, and marked once written. An attempt after an interrupted one
  skips what is marked, and repeats a recorded write only while the store's level is still the one it was
  computed from (or finds it done when the level is the recorded target): a retry or a killed worker never
  takes the units off twice, and two sales of one SKU never overwrite each other.
- **Store orders** (`poll_orders`): the adapter lists them from a per-merchant watermark, less an overlap;
  each is recorded once (`InboundEvent` `po:<merchant>:<order ref>`) in the same transaction that lowers the
  platform's stored level of its SKUs, so it is applied once however often it is read. A level read from the
  store after the order was placed already counts it and is left alone. The watermark is the newest order
  applied (durable) or the start of the last complete pass (Redis).
- **Inventory reconcile** (`reconcile_inventory`): a store may give up retrying a notification, so a slice
  of the merchant's SKUs is read from the store on every run (rotating through the catalog) and applied as
  stock changes through `connector.stock.store_events`, where a newer reading wins.

`run_periodic(kind, job)` is the scheduler's periodic job for every `PeriodicJob` a kind declares: it queues
the per-merchant job for every installed merchant of the kind, deduplicated by job id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from redis.exceptions import LockError, RedisError
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.catalog.levels import DEFAULT_LOCATION, reserved_by_variant, sellable
from connector.domain import event_types, registry
from connector.domain.errors import PermanentError, RetryableError, ValidationError
from connector.domain.orders import Order as PushOrder
from connector.domain.ports import (
    Capability,
    DeclaresPeriodicJobs,
    ListsStoreOrders,
    PeriodicJob,
    ReducesStockForSale,
    StoreJob,
    StoreOrder,
)
from connector.domain.store_events import StoreEvent, StoreEventKind
from connector.infra import outbox, runtime
from connector.infra.models import InboundEvent, Merchant, Variant
from connector.infra.models import InventoryLevel as LevelRow
from connector.infra.queue import SYNC
from connector.infra.store_adapters import build_adapter
from connector.stock import store_events

logger = logging.getLogger(__name__)

PLANNED: Final = "planned"
PROCESSED: Final = "processed"
PO_TOPIC: Final = "PO_POLLED"
SALE_TOPIC: Final = "PLATFORM_SALE"
ORDERS_OVERLAP: Final = timedelta(minutes=10)
"""Each orders pass starts this long before the watermark: an order the store lists late is still read."""
RECONCILE_BATCH: Final = 500
"""SKUs read from the store per reconcile run when the kind declares no batch."""
_ORDERS_MARK: Final = "storelink:{}:orders-polled:{}"
_RECONCILE_CURSOR: Final = "storelink:{}:reconcile-after:{}"
_MARK_TTL: Final = 180 * 24 * 3600


def sale_source(kind: str) -> str:
    """`InboundEvent.source` of the stock-reduction plan of a platform sale (dedupe key
    `<merchant>:<order>`)."""
    return f"{kind}:sale"


def po_source(kind: str) -> str:
    """`InboundEvent.source` of a store order applied to the platform's stock."""
    return f"{kind}:po"


def sells_by_stock(adapter: object) -> bool:
    """True when platform sales reach this store as stock reductions: it cannot take orders but its stock
    can be written."""
    capabilities: frozenset[Capability] = getattr(adapter, "capabilities", frozenset())
    return (
        Capability.ORDER_PUSH not in capabilities
        and Capability.INVENTORY_WRITE in capabilities
        and isinstance(adapter, ReducesStockForSale)
    )


def _insert_once(session: Session, values: dict[str, Any]) -> int | None:
    """Insert an InboundEvent row unless (source, dedupe_key, merchant_id) exists; its id, or None when it
    existed."""
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        builder(InboundEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "dedupe_key", "merchant_id"])
        .returning(InboundEvent.id)
    )
    return session.execute(statement).scalar_one_or_none()


# --- platform sales off the store's stock -----------------------------------------------------------------------


@dataclass
class _Step:
    """One SKU of a sale: `before` and `target` are recorded (committed) before the write is sent."""

    sku: str
    quantity: int
    before: int | None = None
    target: int | None = None
    location: str | None = None
    done: str | None = None  # written | found | unknown | ambiguous

    def as_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "before": self.before,
            "target": self.target,
            "location": self.location,
            "done": self.done,
        }


def _sale_key(merchant_id: int, public_id: str) -> str:
    return f"{merchant_id}:{public_id}"


def _stock_lock(kind: str, merchant_id: int, sku: str) -> str:
    digest = hashlib.sha256(sku.encode()).hexdigest()[:24]
    return f"storelink:{kind}:stock-lock:{merchant_id}:{digest}"


def _plan(rt: runtime.Runtime, kind: str, merchant_id: int, order: PushOrder) -> tuple[int, str, list[_Step]]:
    """The sale's recorded plan, recorded now (one step per SKU, nothing read yet) on the first attempt."""
    key = _sale_key(merchant_id, order.id)
    source = sale_source(kind)
    with rt.db.session() as session:
        row = session.execute(
            select(InboundEvent.id, InboundEvent.status, InboundEvent.raw_body).where(
                InboundEvent.source == source, InboundEvent.dedupe_key == key
            )
        ).first()
        if row is None:
            wanted: dict[str, int] = {}
            for line in order.lines:
                wanted[line.variant_external_id] = wanted.get(line.variant_external_id, 0) + line.quantity
            steps = [_Step(sku, quantity) for sku, quantity in wanted.items() if quantity > 0]
            row_id = _insert_once(
                session,
                {
                    "source": source,
                    "dedupe_key": key,
                    "merchant_id": merchant_id,
                    "topic": SALE_TOPIC,
                    "headers": {},
                    "raw_body": _body(order, steps),
                    "status": PLANNED,
                },
            )
            if row_id is not None:
                return row_id, PLANNED, steps
            row = session.execute(
                select(InboundEvent.id, InboundEvent.status, InboundEvent.raw_body).where(
                    InboundEvent.source == source, InboundEvent.dedupe_key == key
                )
            ).one()
    recorded = json.loads(bytes(row.raw_body))
    return row.id, row.status, [_Step(**step) for step in recorded["steps"]]


def _body(order: PushOrder, steps: Sequence[_Step]) -> bytes:
    return json.dumps({"order": order.id, "steps": [s.as_dict() for s in steps]}, sort_keys=True).encode()


def _save(
    rt: runtime.Runtime, row_id: int, order: PushOrder, steps: Sequence[_Step], *, finished: bool
) -> None:
    values: dict[str, Any] = {"raw_body": _body(order, steps)}
    if finished:
        values.update(status=PROCESSED, processed_at=datetime.now(UTC))
    with rt.db.session() as session:
        session.execute(update(InboundEvent).where(InboundEvent.id == row_id).values(**values))


def _take_off(
    rt: runtime.Runtime,
    adapter: ReducesStockForSale,
    row_id: int,
    order: PushOrder,
    steps: Sequence[_Step],
    step: _Step,
    log: dict[str, Any],
) -> None:
    """One SKU, under its lock: read, record what will be written, write it, record that it was."""
    current = adapter.read_stock(step.sku)
    if current is None or current.available is None:
        step.done = "unknown"
        logger.warning(
            "sold SKU unknown to the store; its stock is not reduced", extra={**log, "sku": step.sku}
        )
        _save(rt, row_id, order, steps, finished=False)
        return
    if step.before is not None and step.target is not None:
        # An earlier attempt recorded this write and ended before recording its outcome.
        if current.available == step.target:
            step.done = "found"
            _save(rt, row_id, order, steps, finished=False)
            return
        if current.available != step.before:
            # The level moved since: whether the earlier write landed cannot be told, and a second
            # reduction could take the units off twice. The stock reconcile shows the store's figure.
            step.done = "ambiguous"
            logger.warning(
                "store stock changed since an interrupted write; not reduced again",
                extra={**log, "sku": step.sku, "before": step.before, "target": step.target},
            )
            _save(rt, row_id, order, steps, finished=False)
            return
    else:
        step.before = current.available
        step.target = max(0, current.available - step.quantity)
        step.location = current.location_ref
        _save(rt, row_id, order, steps, finished=False)  # recorded before anything is sent
    assert step.target is not None
    adapter.reduce_stock_for_sale(step.sku, step.location or current.location_ref, step.target)
    step.done = "written"
    _save(rt, row_id, order, steps, finished=False)


def take_off_store_stock(
    rt: runtime.Runtime, merchant_id: int, order: PushOrder, adapter: ReducesStockForSale, kind: str
) -> int:
    """Take the units of a platform sale off the store's stock exactly once; returns the SKUs written.

    Each SKU is read, its new level recorded, written and marked under a lock per SKU, so two sales of one
    SKU never overwrite each other; an attempt after an interrupted one writes only what is not recorded as
    done, and a recorded write whose outcome is unknown is repeated only when the level is still the one it
    was computed from. The caller holds the order's push lease, so two attempts of one order never run at
    once."""
    log = {"merchant_id": merchant_id, "order": order.id}
    row_id, status, steps = _plan(rt, kind, merchant_id, order)
    if status == PROCESSED:
        logger.info("store stock already reduced for this sale", extra=log)
        return 0
    wait = 2 * rt.settings.http_timeout_seconds + 10
    written = 0
    for step in steps:
        if step.done:
            continue
        lock = rt.redis.lock(_stock_lock(kind, merchant_id, step.sku), timeout=wait, blocking_timeout=wait)
        if not lock.acquire():
            raise RetryableError(
                f"stock of {step.sku} is being written by another sale", retry_after=1.0, code="stock_busy"
            )
        try:
            _take_off(rt, adapter, row_id, order, steps, step, log)
        finally:
            try:
                lock.release()
            except LockError:
                logger.warning("stock lock lapsed before release", extra={**log, "sku": step.sku})
        written += step.done == "written"
    _save(rt, row_id, order, steps, finished=True)
    logger.info("platform sale taken off the store's stock", extra={**log, "skus": written})
    return written


# --- store orders off the platform's stock -----------------------------------------------------------------


@dataclass
class PollReport:
    read: int = 0
    applied: int = 0
    units: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "applied": self.applied, "units": self.units}


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _orders_since(rt: runtime.Runtime, merchant: Merchant) -> datetime:
    with rt.db.session() as session:
        newest = session.scalar(
            select(func.max(InboundEvent.triggered_at)).where(
                InboundEvent.source == po_source(merchant.kind), InboundEvent.merchant_id == merchant.id
            )
        )
    marks = [_aware(newest), _aware(merchant.created_at)]
    try:
        raw = rt.redis.get(_ORDERS_MARK.format(merchant.kind, merchant.id))
    except RedisError:
        raw = None
    if raw:
        marks.append(datetime.fromtimestamp(float(raw), UTC))
    return max(mark for mark in marks if mark is not None) - ORDERS_OVERLAP


def _lower_levels(
    session: Session, merchant: Merchant, po: StoreOrder, quantities: Mapping[str, int]
) -> tuple[int, list[outbox.DomainEvent]]:
    """Lower the stored home level of each SKU by the order's units, unless read after the order."""
    dialect = session.get_bind().dialect.name
    home = merchant.location_ref or DEFAULT_LOCATION
    rows = session.execute(
        select(LevelRow, Variant.external_id, Variant.product_id, Variant.inventory_tracked)
        .join(Variant, Variant.id == LevelRow.variant_id)
        .where(
            Variant.merchant_id == merchant.id,
            Variant.external_id.in_(sorted(quantities)),
            LevelRow.location_ref == home,
        )
        .with_for_update(of=LevelRow)
    ).all()
    ordered_at = _aware(po.ordered_at)
    changed: list[tuple[LevelRow, str, int, int, bool]] = []
    units = 0
    for level, sku, product_id, tracked in rows:
        seen = _aware(level.source_updated_at)
        if seen is not None and ordered_at is not None and seen >= ordered_at:
            continue  # read from the store after the order was placed: it already counts it
        before = level.available
        level.available = max(0, before - quantities[sku])
        level.version += 1
        units += before - level.available
        changed.append((level, sku, product_id, before, tracked))
    session.flush()
    held = reserved_by_variant(session, [level.variant_id for level, *_ in changed], dialect)
    published: list[outbox.DomainEvent] = []
    now = datetime.now(UTC)
    for level, sku, product_id, before, tracked in changed:
        if not tracked:
            continue
        old = sellable(before, held.get(level.variant_id, 0), merchant.inventory_buffer)
        new = sellable(level.available, held.get(level.variant_id, 0), merchant.inventory_buffer)
        if old != new:
            published.append(
                outbox.DomainEvent(
                    event_types.INVENTORY_UPDATED,
                    merchant.id,
                    {
                        "variant_id": level.variant_id,
                        "external_id": sku,
                        "product_id": product_id,
                        "location": home,
                        "available": level.available,
                        "sellable": new,
                        "previous_sellable": old,
                        "cause": f"{merchant.kind} order {po.order_ref}",
                    },
                    now,
                )
            )
    return units, published


def apply_store_order(rt: runtime.Runtime, merchant: Merchant, po: StoreOrder) -> int | None:
    """Apply one store order to the platform's stock once; the units taken off, None when it was applied
    before."""
    quantities = po.sku_quantities()
    with rt.db.session() as session:
        inserted = _insert_once(
            session,
            {
                "source": po_source(merchant.kind),
                "dedupe_key": f"po:{merchant.id}:{po.order_ref}",
                "merchant_id": merchant.id,
                "topic": PO_TOPIC,
                "headers": {},
                "raw_body": json.dumps(quantities, sort_keys=True).encode(),
                "triggered_at": _aware(po.ordered_at),
                "status": PROCESSED,
                "processed_at": datetime.now(UTC),
            },
        )
        if inserted is None:
            return None
        units, published = _lower_levels(session, merchant, po, quantities) if quantities else (0, [])
        outbox.publish(session, published)
    return units


def _installed(rt: runtime.Runtime, merchant_id: int) -> Merchant | None:
    """The merchant, detached, when it is installed; else None."""
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None or merchant.status != "installed":
            return None
        session.expunge(merchant)
    return merchant


def poll_orders(merchant_id: int) -> dict[str, int]:
    """RQ job: read the orders placed in the merchant's store since its watermark and apply the new ones."""
    rt = runtime.current()
    report = PollReport()
    merchant = _installed(rt, merchant_id)
    if merchant is None:
        return report.as_dict()
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    if not isinstance(adapter, ListsStoreOrders):
        raise PermanentError(f"merchant {merchant_id}: its store cannot list orders", code="unsupported")
    started = datetime.now(UTC)
    since = _orders_since(rt, merchant)
    for po in adapter.list_store_orders(since):
        report.read += 1
        units = apply_store_order(rt, merchant, po)
        if units is not None:
            report.applied += 1
            report.units += units
    try:
        rt.redis.set(_ORDERS_MARK.format(merchant.kind, merchant_id), str(started.timestamp()), ex=_MARK_TTL)
    except RedisError:
        logger.warning(
            "orders watermark not kept; the next pass reads more", extra={"merchant_id": merchant_id}
        )
    log = logger.info if report.applied else logger.debug
    log(
        "store orders polled",
        extra={
            "merchant_id": merchant_id,
            "kind": merchant.kind,
            "since": since.isoformat(),
            **report.as_dict(),
        },
    )
    return report.as_dict()


# --- inventory reconcile ---------------------------------------------------------------------------------------


def _batch(kind: str) -> int:
    for job in periodic_jobs(kind):
        if job.job is StoreJob.STOCK_RECONCILE and job.batch > 0:
            return job.batch
    return RECONCILE_BATCH


def reconcile_inventory(merchant_id: int, batch: int | None = None) -> dict[str, int]:
    """RQ job: read the stock of the next `batch` SKUs from the store (the kind's declared batch by default)
    and apply it where it is newer than the stored level (the polling backstop for notifications the store
    gave up on)."""
    rt = runtime.current()
    merchant = _installed(rt, merchant_id)
    if merchant is None:
        return {"read": 0, "updated": 0}
    batch = batch or _batch(merchant.kind)
    cursor_key = _RECONCILE_CURSOR.format(merchant.kind, merchant_id)
    try:
        after = int(rt.redis.get(cursor_key) or 0)
    except (RedisError, ValueError):
        after = 0
    with rt.db.session() as session:
        rows = session.execute(
            select(Variant.id, Variant.external_id)
            .where(
                Variant.merchant_id == merchant_id,
                Variant.id > after,
                Variant.status != "deleted",
                Variant.inventory_tracked.is_(True),
            )
            .order_by(Variant.id)
            .limit(batch)
        ).all()
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    if Capability.INVENTORY_READ not in getattr(adapter, "capabilities", frozenset()):
        raise PermanentError(f"merchant {merchant_id}: its store stock cannot be read", code="unsupported")
    levels = adapter.get_inventory([sku for _, sku in rows]) if rows else []
    changes: list[tuple[int, Sequence[StoreEvent]]] = [
        (
            position,
            [
                StoreEvent(
                    StoreEventKind.INVENTORY_CHANGED,
                    level.variant_external_id,
                    level.source_updated_at or datetime.now(UTC),
                    {"available": level.available, "location_ref": level.location_ref},
                )
            ],
        )
        for position, level in enumerate(levels)
        if level.available is not None
    ]
    with rt.db.session() as session:
        current = session.get(Merchant, merchant_id)
        assert current is not None
        applied = store_events.apply(session, current, changes)
    updated = sum(1 for status, _ in applied.results.values() if status == store_events.PROCESSED)
    next_after = rows[-1][0] if len(rows) == batch else 0
    try:
        rt.redis.set(cursor_key, str(next_after), ex=_MARK_TTL)
    except RedisError:
        logger.warning("reconcile cursor not kept", extra={"merchant_id": merchant_id})
    logger.info(
        "store stock reconciled",
        extra={"merchant_id": merchant_id, "read": len(levels), "updated": updated, "after": after},
    )
    return {"read": len(levels), "updated": updated}


# --- scheduling --------------------------------------------------------------------------------------------------


def periodic_jobs(kind: str) -> tuple[PeriodicJob, ...]:
    """The periodic jobs `kind`'s adapter declares (none when it declares none or is not installed)."""
    try:
        cls = registry.adapter_class(kind)
    except ValidationError:
        return ()
    return tuple(cls.periodic_jobs) if isinstance(cls, DeclaresPeriodicJobs) else ()


def all_periodic_jobs() -> list[tuple[str, PeriodicJob]]:
    """(kind, job) for every periodic job of every installed adapter."""
    return [(kind, job) for kind in registry.kinds() for job in periodic_jobs(kind)]


def job_id(kind: str, job: StoreJob, merchant_id: int) -> str:
    return f"{kind}-{job.value}-{merchant_id}"


_JOBS: Final = {
    StoreJob.STORE_ORDERS: (poll_orders, 600),
    StoreJob.STOCK_RECONCILE: (reconcile_inventory, 900),
}
"""The per-merchant RQ job of each `StoreJob`, and its timeout."""


def _merchants(rt: runtime.Runtime, kind: str) -> list[int]:
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(Merchant.id)
                .where(Merchant.kind == kind, Merchant.status == "installed")
                .order_by(Merchant.id)
            )
        )


def _enqueue(rt: runtime.Runtime, kind: str, job: StoreJob, merchant_id: int) -> None:
    func, timeout = _JOBS[job]
    rt.queues.enqueue(SYNC, func, merchant_id, job_id=job_id(kind, job, merchant_id), timeout=timeout)


def request_poll(rt: runtime.Runtime, kind: str, merchant_id: int) -> None:
    """Queue the merchant's orders poll now (a notification said store orders were placed); best effort,
    since the scheduler's poll comes anyway."""
    if not any(job.job is StoreJob.STORE_ORDERS for job in periodic_jobs(kind)):
        return
    try:
        _enqueue(rt, kind, StoreJob.STORE_ORDERS, merchant_id)
    except RedisError:
        logger.warning(
            "orders poll not queued; the scheduled poll reads them", extra={"merchant_id": merchant_id}
        )


def run_periodic(kind: str, job: str) -> list[int]:
    """Scheduler job: queue `job` (a `StoreJob` value) for every installed merchant of `kind` (one live job
    each)."""
    rt = runtime.current()
    which = StoreJob(job)
    ids = _merchants(rt, kind)
    for merchant_id in ids:
        _enqueue(rt, kind, which, merchant_id)
    return ids
