"""The drain job: a merchant's pending deliveries applied in batches, in store-time order; sweep and replay.

One job takes up to `BATCH` pending deliveries of one merchant, parses them through the merchant's adapter,
applies them (`connector.stock.store_events`) and marks them in the same transaction, so a worker killed in the
middle leaves them pending and a later drain applies them once. A Redis lock per merchant, which lapses when
not renewed for WORKER_LOCK_SECONDS, keeps drains of one merchant in sequence (their order is the store's
order); a job that finds the lock taken waits a moment for it, then asks again a little later. A batch that fails as a whole is retried one delivery at a time, so one poisoned delivery is
marked failed (support can replay it) and the others are applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from redis.exceptions import LockError, RedisError
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from connector.catalog import syncs
from connector.domain.errors import PermanentError, RetryableError
from connector.domain.ports import InventoryTotals
from connector.domain.store_events import StoreEvent
from connector.infra import export_signals, runtime
from connector.infra.models import InboundEvent, Merchant
from connector.infra.store_adapters import build_adapter
from connector.stock import store_events, store_orders
from webhooks.inbound import scheduling

logger = logging.getLogger(__name__)

PENDING, PROCESSED, SKIPPED, FAILED = "pending", "processed", "skipped", "failed"
STATUSES: Final = (PENDING, PROCESSED, SKIPPED, FAILED)
BATCH: Final = 500
TIME_BUDGET: Final = 20.0
"""Seconds one job drains before it hands the rest to a fresh job (other merchants get a turn)."""
LOCK_WAIT: Final = 3.0
"""Seconds a job waits for another drain of the same merchant, which is finishing, before asking again."""
NOTE_CHARS: Final = 1000


_TRANSIENT = (RetryableError, OperationalError, InterfaceError, RedisError)


def lock_key(merchant_id: int) -> str:
    return f"storelink:inbound:lock:{merchant_id}"


@dataclass
class DrainCounts:
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "batches": self.batches,
        }


def drain(merchant_id: int, queue: str = scheduling.DEFAULT_QUEUE) -> dict[str, int]:
    """RQ job: apply `merchant_id`'s pending deliveries; returns the counts (for logs and tests).

    The wake-up flag stays set while the job drains, so deliveries stored meanwhile queue no second job
    (which would only wait for this one's lock); once caught up, the job clears the flag, reads once more
    (what that read finds was stored before the clear, perhaps unannounced) and stops. A delivery stored
    after the clear wakes a new job, which queues behind the jobs already waiting: under a steady stream a
    drain does not keep its worker while other merchants' drains and the dispatchers wait.
    """
    rt = runtime.current()
    ttl = rt.settings.worker_lock_seconds
    lock = rt.redis.lock(lock_key(merchant_id), timeout=ttl, blocking_timeout=min(LOCK_WAIT, ttl))
    if not lock.acquire():
        scheduling.clear(rt.redis, merchant_id)
        scheduling.signal(rt.redis, merchant_id, queue=queue, delay=1.0, ttl=ttl)
        return {"busy": 1}
    counts = DrainCounts()
    flag_cleared = False
    try:
        deadline = time.monotonic() + TIME_BUDGET
        while True:
            taken = drain_batch(rt, merchant_id, counts)
            if taken < BATCH:
                if flag_cleared:  # its read after letting go of the flag is its last: see `drain`
                    break
                scheduling.clear(rt.redis, merchant_id)
                flag_cleared = True
                time.sleep(scheduling.SETTLE)  # see `scheduling.wake`
            elif time.monotonic() > deadline:
                scheduling.clear(rt.redis, merchant_id)
                scheduling.signal(rt.redis, merchant_id, queue=queue, ttl=ttl)
                break
            lock.extend(ttl, replace_ttl=True)
    finally:
        try:
            lock.release()
        except LockError:  # expired while we worked: another drain may run now, and that is safe
            logger.warning("drain lock expired before release", extra={"merchant_id": merchant_id})
    if counts.batches:
        logger.info("inbound drained", extra={"merchant_id": merchant_id, **counts.as_dict()})
    return counts.as_dict()


_mark = (
    update(InboundEvent)
    .where(InboundEvent.id == bindparam("event_id"), InboundEvent.status == PENDING)
    .values(status=bindparam("new_status"), error=bindparam("note"), processed_at=bindparam("now"))
)


def _pending(session: Session, merchant: Merchant, limit: int) -> list[Any]:
    """The merchant's stored deliveries still to apply, oldest store time first (only its store's own: the
    core keeps other records of its own in the same table under other sources)."""
    store_time = func.coalesce(InboundEvent.triggered_at, InboundEvent.received_at)
    return list(
        session.execute(
            select(InboundEvent.id, InboundEvent.topic, InboundEvent.headers, InboundEvent.raw_body)
            .where(
                InboundEvent.merchant_id == merchant.id,
                InboundEvent.source == merchant.kind,
                InboundEvent.status == PENDING,
            )
            .order_by(store_time, InboundEvent.id)
            .limit(limit)
        )
    )


def drain_batch(rt: runtime.Runtime, merchant_id: int, counts: DrainCounts, limit: int = BATCH) -> int:
    """Apply one batch; returns how many deliveries it took."""
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        rows = _pending(session, merchant, limit) if merchant is not None else []
        ids = [row.id for row in rows]
    if merchant is None or not rows:
        return 0
    counts.batches += 1
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    stock = adapter if isinstance(adapter, InventoryTotals) else None
    parsed: list[tuple[int, Sequence[StoreEvent]]] = []
    refused: dict[int, str] = {}
    for row in rows:
        try:
            parsed.append((row.id, adapter.parse_webhook(row.topic, row.headers, row.raw_body)))
        except PermanentError as exc:
            refused[row.id] = f"{exc.code}: {exc.message}"
    try:
        _apply(rt, merchant_id, ids, parsed, refused, counts, stock)
    except _TRANSIENT:
        raise  # nothing was written: the job's retry (or the sweeper) drains the same batch again
    except Exception:
        logger.exception(
            "inbound batch failed; applying its deliveries one at a time",
            extra={"merchant_id": merchant_id, "deliveries": len(rows)},
        )
        for one in parsed:
            try:
                _apply(rt, merchant_id, [one[0]], [one], {}, counts, stock)
            except _TRANSIENT:
                raise
            except Exception as exc:
                _fail(rt, one[0], exc, counts)
        if refused:
            _apply(rt, merchant_id, list(refused), [], refused, counts)
    return len(rows)


def _apply(
    rt: runtime.Runtime,
    merchant_id: int,
    ids: list[int],
    parsed: list[tuple[int, Sequence[StoreEvent]]],
    refused: dict[int, str],
    counts: DrainCounts,
    stock: InventoryTotals | None = None,
) -> None:
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None:
            return
        applied = store_events.apply(session, merchant, parsed, stock=stock, secrets=rt.secrets)
        now = datetime.now(UTC)
        marks = []
        for delivery_id in ids:
            if delivery_id in refused:
                status, note = FAILED, refused[delivery_id]
            else:
                status, note = applied.results.get(delivery_id, (SKIPPED, "no events"))
            marks.append(
                {"event_id": delivery_id, "new_status": status, "note": note[:NOTE_CHARS], "now": now}
            )
        session.connection().execute(_mark, marks)
        runs = list(applied.runs)
        kind = merchant.kind
    if applied.read_store_orders:
        store_orders.request_poll(rt, kind, merchant_id)
    for operation in applied.bulk_finished:
        try:
            export_signals.notify(rt.redis, merchant_id, operation)
        except RedisError:  # the waiting sync finds the end at its next status poll
            logger.warning("bulk signal not sent", extra={"merchant_id": merchant_id, "operation": operation})
    for mark in marks:
        if mark["new_status"] == PROCESSED:
            counts.processed += 1
        elif mark["new_status"] == FAILED:
            counts.failed += 1
        else:
            counts.skipped += 1
    for run in runs:
        syncs.enqueue_run(rt, run)


def _fail(rt: runtime.Runtime, delivery_id: int, exc: Exception, counts: DrainCounts) -> None:
    logger.error("inbound delivery failed", extra={"inbound_event_id": delivery_id}, exc_info=exc)
    note = f"{type(exc).__name__}: {exc}"
    with rt.db.session() as session:
        session.connection().execute(
            _mark,
            [
                {
                    "event_id": delivery_id,
                    "new_status": FAILED,
                    "note": note[:NOTE_CHARS],
                    "now": datetime.now(UTC),
                }
            ],
        )
    counts.failed += 1


# --- sweeping and replay --------------------------------------------------------------------------------


def sweep_inbound(
    rt: runtime.Runtime,
    *,
    grace: timedelta | None = None,
    queue: str = scheduling.DEFAULT_QUEUE,
    now: datetime | None = None,
) -> int:
    """Wake every merchant with a delivery pending for longer than `grace` (half of WORKER_LOCK_SECONDS unless
    given); returns how many were woken."""
    ttl = rt.settings.worker_lock_seconds
    if grace is None:
        grace = timedelta(seconds=ttl / 2)
    cutoff = (now or datetime.now(UTC)) - grace
    with rt.db.session() as session:
        merchant_ids = list(
            session.scalars(
                select(InboundEvent.merchant_id)
                .where(
                    InboundEvent.status == PENDING,
                    InboundEvent.received_at <= cutoff,
                    InboundEvent.merchant_id.is_not(None),
                )
                .distinct()
            )
        )
    woken = sum(
        1 for m in merchant_ids if m is not None and scheduling.signal(rt.redis, m, queue=queue, ttl=ttl)
    )
    if woken:
        logger.info("merchants with old pending deliveries woken", extra={"woken": woken})
    return woken


def sweep() -> int:
    """Periodic job (the scheduler's): wake merchants whose drain job was lost."""
    return sweep_inbound(runtime.current())


def list_events(
    session: Session,
    merchant_id: int,
    *,
    status: str | None = None,
    topic: str | None = None,
    limit: int = 50,
) -> list[InboundEvent]:
    """A merchant's stored store webhooks, newest first, filtered by status and topic."""
    query = (
        select(InboundEvent)
        .where(InboundEvent.merchant_id == merchant_id)
        .order_by(InboundEvent.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(InboundEvent.status == status)
    if topic:
        query = query.where(InboundEvent.topic == topic)
    return list(session.scalars(query))


def replay(
    session: Session,
    merchant_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: Sequence[str] = (FAILED,),
    topic: str | None = None,
    limit: int = 100_000,
) -> list[int]:
    """Set stored deliveries of a merchant back to pending (received in [since, until), with one of
    `statuses`); the caller signals the merchant after commit. Applying them again is harmless: changes
    the stored state already has are skipped as stale."""
    unknown = sorted(set(statuses) - set(STATUSES) - {PENDING})
    if unknown:
        raise ValueError(f"unknown status(es) {', '.join(unknown)}")
    query = (
        select(InboundEvent.id)
        .where(
            InboundEvent.merchant_id == merchant_id,
            InboundEvent.source == select(Merchant.kind).where(Merchant.id == merchant_id).scalar_subquery(),
            InboundEvent.status.in_(list(statuses)),
        )
        .order_by(InboundEvent.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(InboundEvent.received_at >= since)
    if until is not None:
        query = query.where(InboundEvent.received_at < until)
    if topic is not None:
        query = query.where(InboundEvent.topic == topic)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(InboundEvent)
            .where(InboundEvent.id.in_(ids))
            .values(status=PENDING, error=None, processed_at=None)
            .execution_options(synchronize_session=False)
        )
    logger.info("inbound deliveries replayed", extra={"merchant_id": merchant_id, "replayed": len(ids)})
    return ids
