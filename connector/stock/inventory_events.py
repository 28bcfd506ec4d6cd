"""Stock events applied to inventory levels: newer wins, one `inventory.updated` per variant whose sellable
stock changed; for one merchant, or for the merchants of a drain batch at once.

`apply_inventory` takes one merchant's stock events (see `connector.stock.store_events` for the location
rules). Inside `batched(session, ...)`, opened by the inbound drain around a batch of many merchants, the
variants, stored levels and holds of every merchant of the batch are read in three queries when the block
opens, and the level writes of all of them are stored together (one insert, one update) when it ends, so a
batch spread over a thousand merchants costs the queries a batch of one merchant does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from connector.catalog.levels import reserved_by_variant, sellable
from connector.domain import event_types
from connector.domain.ports import InventoryTotals
from connector.domain.store_events import StoreEvent, StoreEventKind
from connector.infra import bulk_insert, outbox
from connector.infra.models import InventoryLevel, Merchant
from connector.infra.models import Variant as VariantRow

logger = logging.getLogger(__name__)

PROCESSED, SKIPPED = "processed", "skipped"
DELETED: Final = "deleted"
DEFAULT_LOCATION: Final = "default"
"""The home location of a merchant that sells stock summed over every location."""


class Notes(Protocol):
    """Where the outcome of each delivery is noted (`store_events.Applied`)."""

    def note(self, delivery: int, status: str, text: str) -> None: ...


def stale(incoming: datetime | None, stored: datetime | None) -> bool:
    return incoming is not None and stored is not None and incoming <= stored


_level_update = (
    update(InventoryLevel)
    .where(InventoryLevel.id == bindparam("level_id"))
    .values(
        available=bindparam("new_available"),
        source_updated_at=bindparam("new_source_updated_at"),
        version=InventoryLevel.version + 1,
        updated_at=bindparam("now"),
    )
)


@dataclass
class _Variants:
    """The merchant's variants an inventory batch names, by variant external id and by inventory item."""

    by_ref: dict[str, tuple[int, int, bool, str, str]] = field(default_factory=dict)
    by_item: dict[str, tuple[int, int, bool, str, str]] = field(default_factory=dict)

    def find(self, event: StoreEvent) -> tuple[int, int, bool, str, str] | None:
        item = event.data.get("inventory_item_ref")
        return self.by_item.get(item) if isinstance(item, str) else self.by_ref.get(event.external_id)


def _variants(session: Session, merchant: Merchant, changes: list[tuple[int, StoreEvent]]) -> _Variants:
    dialect = session.get_bind().dialect.name
    items = sorted({i for _, e in changes if isinstance(i := e.data.get("inventory_item_ref"), str)})
    refs = sorted(
        {e.external_id for _, e in changes if not isinstance(e.data.get("inventory_item_ref"), str)}
    )
    columns = (
        VariantRow.id,
        VariantRow.product_id,
        VariantRow.inventory_tracked,
        VariantRow.status,
        VariantRow.external_id,
    )
    found = _Variants()
    if refs:
        query = select(*columns).where(
            VariantRow.merchant_id == merchant.id,
            bulk_insert.in_values(dialect, VariantRow.external_id, refs),
        )
        for vid, pid, tracked, status, ext in session.execute(query):
            found.by_ref[ext] = (vid, pid, tracked, status, ext)
    if items:
        by_item = select(*columns, VariantRow.inventory_item_ref).where(
            VariantRow.merchant_id == merchant.id,
            bulk_insert.in_values(dialect, VariantRow.inventory_item_ref, items),
        )
        for vid, pid, tracked, status, ext, item in session.execute(by_item):
            if item is None:
                continue
            known = found.by_item.get(item)
            if known is None or known[3] == DELETED:  # a live variant wins over a deleted one
                found.by_item[item] = (vid, pid, tracked, status, ext)
    return found


@dataclass
class _LevelPass:
    """One batch of stock events against the stored levels of the variants they name: `levels` maps
    (variant id, location) to [level id or None, available, store time]; `touched` what the batch sets;
    `summed` the levels whose figure is the store's total over locations (inventory item, deliveries)."""

    home: str
    summing: bool
    levels: dict[tuple[int, str], list[Any]]
    before: dict[tuple[int, str], int | None] = field(default_factory=dict)
    touched: dict[tuple[int, str], tuple[int | None, datetime | None]] = field(default_factory=dict)
    summed: dict[tuple[int, str], tuple[str, list[int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.before = {key: value[1] for key, value in self.levels.items()}


def _stored_levels(session: Session, dialect: str, ids: list[int]) -> dict[tuple[int, str], list[Any]]:
    return {
        (vid, loc): [lid, available, seen]
        for lid, vid, loc, available, seen in session.execute(
            select(
                InventoryLevel.id,
                InventoryLevel.variant_id,
                InventoryLevel.location_ref,
                InventoryLevel.available,
                InventoryLevel.source_updated_at,
            ).where(bulk_insert.in_values(dialect, InventoryLevel.variant_id, ids))
        )
    }


def _take(
    run: _LevelPass, merchant: Merchant, variants: _Variants, delivery: int, event: StoreEvent, done: Notes
) -> None:
    """Take one stock event into the pass, or note why it is skipped."""
    item = event.data.get("inventory_item_ref")
    name = item if isinstance(item, str) else event.external_id
    found = variants.find(event)
    if found is None:
        unknown = (
            f"no variant with inventory item {name}" if isinstance(item, str) else f"unknown variant {name}"
        )
        done.note(delivery, SKIPPED, unknown)
        return
    quantity = event.data["available"] if "available" in event.data else event.data.get("quantity")
    if quantity is None:
        done.note(delivery, SKIPPED, f"stock of {name} is not tracked")
        return
    assert isinstance(quantity, int)
    location = str(event.data.get("location_ref") or event.data.get("location") or run.home)
    total = False
    if location != run.home:
        if merchant.location_ref is not None:
            done.note(delivery, SKIPPED, f"stock at {location}, not at {run.home}")
            return
        if run.summing and isinstance(item, str):
            location, total = run.home, True
    key = (found[0], location)
    level = run.levels.get(key)
    if level is not None and stale(event.occurred_at, level[2]):
        done.note(delivery, SKIPPED, f"stale: {name} has newer stock")
        return
    if level is None:
        run.levels[key] = level = [None, quantity, event.occurred_at]
    else:
        level[1], level[2] = quantity, event.occurred_at or level[2]
    run.touched[key] = (quantity, level[2])
    if total:
        assert isinstance(item, str)
        run.summed.setdefault(key, (item, []))[1].append(delivery)
    else:
        for earlier in run.summed.pop(key, ("", []))[1]:  # a direct figure newer than summed ones stands
            done.note(earlier, PROCESSED, "stock updated")
        done.note(delivery, PROCESSED, "stock updated")


def _sum_over_locations(run: _LevelPass, stock: InventoryTotals, done: Notes) -> None:
    """Levels of a merchant selling from every location take the store's total of each inventory item."""
    totals = stock.inventory_totals(sorted({item for item, _ in run.summed.values()}))
    for key, (item, deliveries) in run.summed.items():
        amount = totals.get(item)
        note = "stock updated (summed over locations)"
        if amount is None:
            del run.touched[key]
            run.levels[key][1] = run.before.get(key)
            note = f"stock of {item} is not tracked or not found in the store"
        else:
            run.touched[key] = (amount, run.touched[key][1])
        for delivery in deliveries:
            done.note(delivery, PROCESSED if amount is not None else SKIPPED, note)


def _level_writes(
    merchant: Merchant, run: _LevelPass, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The levels `run` creates (rows to insert) and changes (parameters of `_level_update`)."""
    inserts = [
        {
            "merchant_id": merchant.id,
            "variant_id": vid,
            "location_ref": loc,
            "available": quantity,
            "source_updated_at": seen,
            "version": 1,
            "updated_at": now,
        }
        for (vid, loc), (quantity, seen) in run.touched.items()
        if run.levels[(vid, loc)][0] is None
    ]
    updates = [
        {"level_id": run.levels[key][0], "new_available": quantity, "new_source_updated_at": seen, "now": now}
        for key, (quantity, seen) in run.touched.items()
        if run.levels[key][0] is not None
    ]
    return inserts, updates


def _write_levels(session: Session, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
    if inserts:
        bulk_insert.insert_many(session.connection(), InventoryLevel.__table__, inserts)  # type: ignore[arg-type]
    if updates:
        session.connection().execute(_level_update, updates)


def _home_changes(run: _LevelPass) -> list[tuple[int, int]]:
    return [(vid, q) for (vid, loc), (q, _) in run.touched.items() if loc == run.home and q is not None]


def _sellable_changes(
    merchant: Merchant, variants: _Variants, run: _LevelPass, held: Mapping[int, int], now: datetime
) -> list[outbox.DomainEvent]:
    """`inventory.updated` for each tracked, live variant whose sellable stock at home changed (`held`: the
    units reservations hold, by variant)."""
    home_changes = _home_changes(run)
    by_id = {v[0]: v for v in (*variants.by_ref.values(), *variants.by_item.values())}
    published = []
    for vid, quantity in home_changes:
        _, pid, tracked, status, ext = by_id[vid]
        if not tracked or status == DELETED:
            continue
        was = run.before.get((vid, run.home))
        old = sellable(was, held.get(vid, 0), merchant.inventory_buffer) if was is not None else None
        new = sellable(quantity, held.get(vid, 0), merchant.inventory_buffer)
        if old == new:
            continue
        data = {
            "variant_id": vid,
            "external_id": ext,
            "product_id": pid,
            "location": run.home,
            "available": quantity,
            "sellable": new,
            "previous_sellable": old,
        }
        published.append(outbox.DomainEvent(event_types.INVENTORY_UPDATED, merchant.id, data, now))
    return published


def apply_inventory(
    session: Session,
    merchant: Merchant,
    changes: list[tuple[int, StoreEvent]],
    done: Notes,
    stock: InventoryTotals | None,
) -> list[outbox.DomainEvent]:
    """Apply one merchant's stock events ((delivery id, event) pairs, in store-time order); returns the
    `inventory.updated` events to publish. Inside `batched`, reads what the block loaded and leaves its writes
    to the block's end."""
    batch: _Batch | None = session.info.get(_BATCH_KEY)
    preloaded = batch.variants.get(merchant.id) if batch is not None else None
    if batch is not None and preloaded is not None:
        variants = preloaded
        ids = _variant_ids(variants)
        levels = {key: batch.levels[key] for vid in ids for key in batch.keys_of.get(vid, ())}
    else:
        variants = _variants(session, merchant, changes)
        ids = _variant_ids(variants)
        levels = _stored_levels(session, session.get_bind().dialect.name, ids)
    run = _LevelPass(
        home=merchant.location_ref or DEFAULT_LOCATION,
        summing=merchant.location_ref is None and stock is not None,
        levels=levels,
    )
    for delivery, event in changes:
        _take(run, merchant, variants, delivery, event, done)
    if run.summed:
        assert stock is not None
        _sum_over_locations(run, stock, done)
    if not run.touched:
        return []
    now = datetime.now(UTC)
    inserts, updates = _level_writes(merchant, run, now)
    if batch is not None and preloaded is not None:
        batch.inserts += inserts
        batch.updates += updates
        held: Mapping[int, int] = batch.held
    else:
        _write_levels(session, inserts, updates)
        home = [vid for vid, _ in _home_changes(run)]
        held = reserved_by_variant(session, home, session.get_bind().dialect.name) if home else {}
    published = _sellable_changes(merchant, variants, run, held, now)
    logger.debug(
        "inventory applied",
        extra={
            "merchant_id": merchant.id,
            "levels": len(run.touched),
            "summed": len(run.summed),
            "events": len(published),
        },
    )
    return published


def _variant_ids(variants: _Variants) -> list[int]:
    return sorted({v[0] for v in (*variants.by_ref.values(), *variants.by_item.values())})


# --- many merchants at once ---------------------------------------------------------------------------------

_BATCH_KEY: Final = "inventory_events.batch"


@dataclass
class _Batch:
    """What `batched` loaded for the merchants of a batch, and the level writes they left for its end."""

    variants: dict[int, _Variants]
    levels: dict[tuple[int, str], list[Any]]
    held: dict[int, int]
    keys_of: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in self.levels:
            self.keys_of.setdefault(key[0], []).append(key)


def _variants_many(session: Session, events: Mapping[int, Sequence[StoreEvent]]) -> dict[int, _Variants]:
    """The variants the stock events name, by merchant id: two queries whatever the number of merchants."""
    refs: set[tuple[int, str]] = set()
    items: set[tuple[int, str]] = set()
    for merchant_id, found in events.items():
        for event in found:
            item = event.data.get("inventory_item_ref")
            if isinstance(item, str):
                items.add((merchant_id, item))
            else:
                refs.add((merchant_id, event.external_id))
    columns = (
        VariantRow.merchant_id,
        VariantRow.id,
        VariantRow.product_id,
        VariantRow.inventory_tracked,
        VariantRow.status,
        VariantRow.external_id,
    )
    out = {merchant_id: _Variants() for merchant_id in events}
    if refs:
        named = tuple_(VariantRow.merchant_id, VariantRow.external_id).in_(sorted(refs))
        for mid, vid, pid, tracked, status, ext in session.execute(select(*columns).where(named)):
            out[mid].by_ref[ext] = (vid, pid, tracked, status, ext)
    if items:
        named = tuple_(VariantRow.merchant_id, VariantRow.inventory_item_ref).in_(sorted(items))
        query = select(*columns, VariantRow.inventory_item_ref).where(named)
        for mid, vid, pid, tracked, status, ext, item in session.execute(query):
            if item is None:
                continue
            known = out[mid].by_item.get(item)
            if known is None or known[3] == DELETED:  # a live variant wins over a deleted one
                out[mid].by_item[item] = (vid, pid, tracked, status, ext)
    return out


@contextmanager
def batched(session: Session, events: Mapping[int, Sequence[StoreEvent]]) -> Iterator[None]:
    """`apply_inventory` for the merchants of `events` (merchant id → its stock events) inside the block reads
    their variants, levels and holds loaded here at once, and their level writes are stored together when the
    block ends without error, still in the transaction. Each merchant is applied at most once inside it."""
    stock_events = {
        merchant_id: [e for e in found if e.kind is StoreEventKind.INVENTORY_CHANGED]
        for merchant_id, found in events.items()
    }
    stock_events = {merchant_id: found for merchant_id, found in stock_events.items() if found}
    if not stock_events or _BATCH_KEY in session.info:
        yield
        return
    dialect = session.get_bind().dialect.name
    variants = _variants_many(session, stock_events)
    ids = sorted({vid for found in variants.values() for vid in _variant_ids(found)})
    batch = _Batch(
        variants=variants,
        levels=_stored_levels(session, dialect, ids),
        held=reserved_by_variant(session, ids, dialect),
    )
    session.info[_BATCH_KEY] = batch
    try:
        yield
    finally:
        session.info.pop(_BATCH_KEY, None)
    _write_levels(session, batch.inserts, batch.updates)


def flush_batch(session: Session) -> None:
    """Store the level writes left so far inside `batched` (before a read that must see them)."""
    batch: _Batch | None = session.info.get(_BATCH_KEY)
    if batch is not None:
        _write_levels(session, batch.inserts, batch.updates)
        batch.inserts, batch.updates = [], []
