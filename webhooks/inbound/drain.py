"""The drain job: pending deliveries of many merchants applied in batches, in store-time order; sweep, replay.

Merchants are spread over `scheduling.SHARDS` shards and one job drains a shard: one query takes up to `BATCH`
pending deliveries of the shard's merchants (a prefix of each merchant's store-time order, the oldest of every
merchant first), each merchant's are parsed through its adapter and applied
(`connector.stock.store_events`), and all are marked in one transaction, so a worker killed in the middle
leaves them pending and a later drain applies them once. What intake costs per job (a lock, a pause, a
transaction per batch) is the same for one merchant as for a thousand.

A Redis lock per shard, which lapses when not renewed for WORKER_LOCK_SECONDS, keeps the drains of a merchant
in sequence (their order is the store's order): every drain of a merchant holds its shard's lock. A job that
finds the lock taken waits a moment for it, then asks again a little later. A batch that fails as a whole is
retried merchant by merchant, and a merchant's deliveries that fail together one delivery at a time, so one
poisoned delivery is marked failed (support can replay it) and the others, its merchant's and the other
merchants', are applied.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from redis.exceptions import LockError, RedisError
from sqlalchemy import Integer, Select, bindparam, func, literal_column, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from connector.catalog import syncs
from connector.domain.errors import PermanentError, RetryableError
from connector.domain.ports import InventoryTotals
from connector.domain.store_events import StoreEvent
from connector.infra import export_signals, outbox, runtime
from connector.infra.models import InboundEvent, Merchant
from connector.infra.store_adapters import build_adapter
from connector.stock import inventory_events, store_events, store_orders
from webhooks.inbound import scheduling

logger = logging.getLogger(__name__)

PENDING, PROCESSED, SKIPPED, FAILED = "pending", "processed", "skipped", "failed"
STATUSES: Final = (PENDING, PROCESSED, SKIPPED, FAILED)
BATCH: Final = 500
TIME_BUDGET: Final = 20.0
"""Seconds one job drains before it hands the rest to a fresh job (other jobs on its queue get a turn)."""
LOCK_WAIT: Final = 3.0
"""Seconds a job waits for another drain of the same merchant, which is finishing, before asking again."""
NOTE_CHARS: Final = 1000


_TRANSIENT = (RetryableError, OperationalError, InterfaceError, RedisError)


def lock_key(merchant_id: int) -> str:
    """The lock of `merchant_id`'s shard, held by whichever job drains it."""
    return f"storelink:inbound:lock:shard:{scheduling.shard(merchant_id)}"


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
    """RQ job: apply the pending deliveries of `merchant_id`'s shard (`merchant_id`'s and those of the other
    merchants of its shard); returns the counts (for logs and tests).

    The wake-up flag stays set while the job drains, so deliveries stored meanwhile queue no second job
    (which would only wait for this one's lock); once caught up, the job clears the flag, reads once more
    (what that read finds was stored before the clear, perhaps unannounced) and stops. A delivery stored
    after the clear wakes a new job, which queues behind the jobs already waiting: under a steady stream a
    drain does not keep its worker while the other shard's drain and the dispatchers wait.
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
            logger.warning(
                "drain lock expired before release", extra={"shard": scheduling.shard(merchant_id)}
            )
    if counts.batches:
        logger.info("inbound drained", extra={"shard": scheduling.shard(merchant_id), **counts.as_dict()})
    return counts.as_dict()


_mark = (
    update(InboundEvent)
    .where(InboundEvent.id == bindparam("event_id"), InboundEvent.status == PENDING)
    .values(status=bindparam("new_status"), error=bindparam("note"), processed_at=bindparam("now"))
)
_is_pending = InboundEvent.status == literal_column(f"'{PENDING}'")
"""A literal, so that SQLite too reads pending deliveries through the partial index of pending ones."""


def _pending(session: Session, shard: int, limit: int) -> list[Any]:
    """Up to `limit` stored deliveries still to apply, of the merchants of `shard` (only each merchant's own
    store's: the core keeps other records of its own in the same table under other sources).

    Each merchant's deliveries are numbered in store-time order and the batch takes the lowest numbers first,
    so it holds a prefix of every merchant's queue (its order is kept across batches) and one merchant's
    backlog does not hold back the others: each of them has its oldest delivery in the batch before any
    merchant has its second."""
    return list(session.execute(_PENDING, {"shard": shard, "limit": limit}))


def _pending_statement() -> Select[Any]:
    """`_pending`'s query, built once (shard and limit bound at execution)."""
    store_time = func.coalesce(InboundEvent.triggered_at, InboundEvent.received_at)
    place = (
        func.row_number()
        .over(partition_by=InboundEvent.merchant_id, order_by=(store_time, InboundEvent.id))
        .label("place")
    )
    queued = (
        select(InboundEvent.id, place)
        .join(Merchant, Merchant.id == InboundEvent.merchant_id)
        .where(
            _is_pending,
            InboundEvent.merchant_id % scheduling.SHARDS == bindparam("shard"),
            InboundEvent.source == Merchant.kind,
        )
        .subquery()
    )
    return (
        select(
            InboundEvent.id,
            InboundEvent.merchant_id,
            InboundEvent.topic,
            InboundEvent.headers,
            InboundEvent.raw_body,
        )
        .join(queued, queued.c.id == InboundEvent.id)
        .order_by(queued.c.place, InboundEvent.id)
        .limit(bindparam("limit", type_=Integer))
    )


_PENDING: Final = _pending_statement()
_MERCHANTS: Final = select(Merchant).where(Merchant.id.in_(bindparam("ids", expanding=True)))
"""The merchants of a batch, by id (built once)."""


@dataclass
class _Work:
    """One merchant's share of a batch: its deliveries in store-time order, parsed or refused."""

    merchant_id: int
    ids: list[int] = field(default_factory=list)
    parsed: list[tuple[int, Sequence[StoreEvent]]] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    stock: InventoryTotals | None = None
    adapter: Any = None
    """The merchant's adapter, which parses its deliveries (`_parse`)."""


_ADAPTERS: Final = 4096
"""How many merchants' adapters a worker process keeps between batches (`_adapter`)."""
_adapters: OrderedDict[tuple[Any, ...], tuple[Any, InventoryTotals | None]] = OrderedDict()


def _adapter(rt: runtime.Runtime, merchant: Merchant) -> tuple[Any, InventoryTotals | None]:
    """The merchant's adapter (and its stock totals port, if any), built again only when what it is built
    from changed (its kind, store, configuration or credentials: a rotation stores a new ciphertext)."""
    key = (
        id(rt),
        merchant.id,
        merchant.kind,
        merchant.store_ref,
        merchant.credentials_encrypted,
        orjson.dumps(merchant.config, option=orjson.OPT_SORT_KEYS),
    )
    found = _adapters.get(key)
    if found is not None:
        _adapters.move_to_end(key)
        return found
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    found = _adapters[key] = (adapter, adapter if isinstance(adapter, InventoryTotals) else None)
    while len(_adapters) > _ADAPTERS:
        _adapters.popitem(last=False)
    return found


def _parse(rt: runtime.Runtime, merchants: dict[int, Merchant], rows: list[Any]) -> list[_Work]:
    """The batch's rows by merchant, each parsed through its merchant's adapter."""
    works: dict[int, _Work] = {}
    for row in rows:
        merchant = merchants.get(row.merchant_id)
        if merchant is None:  # deleted since the read: its deliveries went with it
            continue
        work = works.get(row.merchant_id)
        if work is None:
            adapter, stock = _adapter(rt, merchant)
            work = works[row.merchant_id] = _Work(row.merchant_id, stock=stock, adapter=adapter)
        work.ids.append(row.id)
        try:
            work.parsed.append((row.id, work.adapter.parse_webhook(row.topic, row.headers, row.raw_body)))
        except PermanentError as exc:
            work.refused[row.id] = f"{exc.code}: {exc.message}"
    return list(works.values())


def drain_batch(rt: runtime.Runtime, merchant_id: int, counts: DrainCounts, limit: int | None = None) -> int:
    """Apply one batch of the pending deliveries of `merchant_id`'s shard, whichever merchants they belong
    to, in one transaction; returns how many deliveries it took."""
    with rt.db.session() as session:
        rows = _pending(session, scheduling.shard(merchant_id), limit or BATCH)
        owners = sorted({row.merchant_id for row in rows})
        merchants = {m.id: m for m in session.scalars(_MERCHANTS, {"ids": owners})}
    if not rows:
        return 0
    counts.batches += 1
    works = _parse(rt, merchants, rows)
    try:
        _apply(rt, works, counts)
    except _TRANSIENT:
        raise  # nothing was written: the job's retry (or the sweeper) drains the same batch again
    except Exception:
        logger.exception(
            "inbound batch failed; applying it merchant by merchant",
            extra={"shard": scheduling.shard(merchant_id), "deliveries": len(rows), "merchants": len(works)},
        )
        for work in works:
            _apply_alone(rt, work, counts)
    return len(rows)


def _apply_alone(rt: runtime.Runtime, work: _Work, counts: DrainCounts) -> None:
    """One merchant's deliveries in a transaction of their own; if that fails, one delivery at a time, so a
    poisoned delivery is marked failed and the others are applied."""
    try:
        _apply(rt, [work], counts)
        return
    except _TRANSIENT:
        raise
    except Exception:
        logger.exception(
            "inbound deliveries failed; applying them one at a time",
            extra={"merchant_id": work.merchant_id, "deliveries": len(work.ids)},
        )
    for one in work.parsed:
        try:
            _apply(rt, [_Work(work.merchant_id, [one[0]], [one], stock=work.stock)], counts)
        except _TRANSIENT:
            raise
        except Exception as exc:
            _fail(rt, one[0], exc, counts)
    if work.refused:
        _apply(rt, [_Work(work.merchant_id, list(work.refused), refused=work.refused)], counts)


@dataclass
class _After:
    """What one merchant's applied deliveries ask for once their transaction committed."""

    merchant_id: int
    kind: str
    read_store_orders: bool
    bulk_finished: list[str]
    runs: list[Any]


def _apply(rt: runtime.Runtime, works: list[_Work], counts: DrainCounts) -> None:
    """Apply and mark the deliveries of `works` (of one or several merchants) in one transaction, then do
    what they ask for after commit (sync runs, store order polls, bulk export signals)."""
    marks: list[dict[str, Any]] = []
    after: list[_After] = []
    with rt.db.session() as session:
        wanted = [work.merchant_id for work in works]
        merchants = {m.id: m for m in session.scalars(_MERCHANTS, {"ids": wanted})}
        events = {work.merchant_id: [e for _, found in work.parsed for e in found] for work in works}
        now = datetime.now(UTC)
        # One read of the batch's variants, levels and holds, one write of its levels, one store of its events.
        with outbox.deferred(session), inventory_events.batched(session, events):
            for work in works:
                merchant = merchants.get(work.merchant_id)
                if merchant is not None:
                    after.append(_apply_one(rt, session, merchant, work, marks, now))
        if marks:
            session.connection().execute(_mark, marks)
    for mark in marks:
        if mark["new_status"] == PROCESSED:
            counts.processed += 1
        elif mark["new_status"] == FAILED:
            counts.failed += 1
        else:
            counts.skipped += 1
    for done in after:
        _after_commit(rt, done)


def _apply_one(
    rt: runtime.Runtime,
    session: Session,
    merchant: Merchant,
    work: _Work,
    marks: list[dict[str, Any]],
    now: datetime,
) -> _After:
    """Apply one merchant's share of the batch in `session`; its marks are added to `marks`."""
    applied = store_events.apply(session, merchant, work.parsed, stock=work.stock, secrets=rt.secrets)
    for delivery_id in work.ids:
        if delivery_id in work.refused:
            status, note = FAILED, work.refused[delivery_id]
        else:
            status, note = applied.results.get(delivery_id, (SKIPPED, "no events"))
        marks.append({"event_id": delivery_id, "new_status": status, "note": note[:NOTE_CHARS], "now": now})
    return _After(
        merchant.id, merchant.kind, applied.read_store_orders, applied.bulk_finished, list(applied.runs)
    )


def _after_commit(rt: runtime.Runtime, done: _After) -> None:
    if done.read_store_orders:
        store_orders.request_poll(rt, done.kind, done.merchant_id)
    for operation in done.bulk_finished:
        try:
            export_signals.notify(rt.redis, done.merchant_id, operation)
        except RedisError:  # the waiting sync finds the end at its next status poll
            logger.warning(
                "bulk signal not sent", extra={"merchant_id": done.merchant_id, "operation": operation}
            )
    for run in done.runs:
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
    """Wake the shard of every merchant with a delivery pending for longer than `grace` (half of
    WORKER_LOCK_SECONDS unless given); returns how many drain jobs that queued."""
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
    one_per_shard = {scheduling.shard(m): m for m in merchant_ids if m is not None}
    woken = sum(1 for m in one_per_shard.values() if scheduling.signal(rt.redis, m, queue=queue, ttl=ttl))
    if woken:
        logger.info(
            "shards with old pending deliveries woken", extra={"woken": woken, "merchants": len(merchant_ids)}
        )
    return woken


def sweep() -> int:
    """Periodic job (the scheduler's): wake the shards whose drain job was lost."""
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
    `statuses`); the caller signals the merchant (its shard) after commit. Applying them again is harmless: changes
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
