"""Store events applied to stored state: newer wins, duplicates are harmless, and changes become domain events.

`apply` takes the parsed events of many inbound deliveries of one merchant and applies them in one
transaction, in order of the store's own time. A change older than (or as old as) what is stored is
skipped, so a late or repeated delivery never overwrites newer state. Bursts for one variant are
coalesced: one `inventory.updated` per variant and batch, from the stock before the batch to the stock after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from connector import bulk, events, registry, syncs
from connector.domain.events import StoreEvent, StoreEventKind
from connector.inventory import reserved_by_variant, sellable
from connector.models import InventoryLevel, Merchant, Order, SyncRun
from connector.models import Product as ProductRow
from connector.models import Variant as VariantRow
from connector.ports import Capability

logger = logging.getLogger(__name__)

PROCESSED, SKIPPED = "processed", "skipped"
DELETED = "deleted"
MERCHANT_UNINSTALLED = "merchant.uninstalled"
ORDER_EVENTS = {
    StoreEventKind.ORDER_FULFILLED: ("fulfilled", "order.fulfilled"),
    StoreEventKind.ORDER_CANCELLED: ("cancelled", "order.cancelled"),
    StoreEventKind.ORDER_REFUNDED: ("refunded", "order.refunded"),
}
FINAL_ORDER_STATES = frozenset({"cancelled", "rejected"})
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class Applied:
    """What `apply` did: per delivery a status and a note, plus the sync runs to queue after commit."""

    results: dict[int, tuple[str, str]] = field(default_factory=dict)
    runs: list[SyncRun] = field(default_factory=list)
    events_published: int = 0

    def note(self, delivery: int, status: str, text: str) -> None:
        # A delivery with several events is processed when any of them changed something.
        previous = self.results.get(delivery)
        if previous is None or (previous[0] == SKIPPED and status == PROCESSED):
            self.results[delivery] = (status, text)
        elif previous[0] == status and text not in previous[1].split("; "):
            self.results[delivery] = (status, f"{previous[1]}; {text}")


def apply(
    session: Session, merchant: Merchant, deliveries: Sequence[tuple[int, Sequence[StoreEvent]]]
) -> Applied:
    """Apply the events of `deliveries` ((delivery id, events) pairs) for `merchant` in `session`."""
    done = Applied()
    ordered: list[tuple[datetime, int, int, StoreEvent]] = []
    for position, (delivery, found) in enumerate(deliveries):
        if not found:
            done.note(delivery, SKIPPED, "no events")
        for event in found:
            ordered.append((event.occurred_at or _EPOCH, position, delivery, event))
    ordered.sort(key=lambda item: (item[0], item[1]))
    if merchant.status == "uninstalled":
        for _, _, delivery, event in ordered:
            if event.kind is not StoreEventKind.APP_UNINSTALLED:
                done.note(delivery, SKIPPED, "merchant uninstalled")
        ordered = [item for item in ordered if item[3].kind is StoreEventKind.APP_UNINSTALLED]
    published: list[events.DomainEvent] = []
    inventory = [(d, e) for _, _, d, e in ordered if e.kind is StoreEventKind.INVENTORY_CHANGED]
    if inventory:
        published += _inventory(session, merchant, inventory, done)
    for _, _, delivery, event in ordered:
        if event.kind is StoreEventKind.PRODUCT_DELETED:
            published += _product_deleted(session, merchant, delivery, event, done)
        elif event.kind is StoreEventKind.PRODUCT_CHANGED:
            _product_changed(session, merchant, delivery, event, done)
        elif event.kind in ORDER_EVENTS:
            published += _order(session, merchant, delivery, event, done)
        elif event.kind is StoreEventKind.APP_UNINSTALLED:
            published += _uninstalled(session, merchant, delivery, event, done)
    done.events_published = events.publish(session, published)
    return done


def _stale(incoming: datetime | None, stored: datetime | None) -> bool:
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


def _inventory(
    session: Session, merchant: Merchant, changes: list[tuple[int, StoreEvent]], done: Applied
) -> list[events.DomainEvent]:
    dialect = session.get_bind().dialect.name
    refs = sorted({e.external_id for _, e in changes})
    variants = {
        ext: (vid, pid, tracked, status)
        for ext, vid, pid, tracked, status in session.execute(
            select(
                VariantRow.external_id,
                VariantRow.id,
                VariantRow.product_id,
                VariantRow.inventory_tracked,
                VariantRow.status,
            ).where(
                VariantRow.merchant_id == merchant.id, bulk.in_values(dialect, VariantRow.external_id, refs)
            )
        )
    }
    ids = [v[0] for v in variants.values()]
    levels: dict[tuple[int, str], list[Any]] = {
        (vid, loc): [lid, available, seen]
        for lid, vid, loc, available, seen in session.execute(
            select(
                InventoryLevel.id,
                InventoryLevel.variant_id,
                InventoryLevel.location_ref,
                InventoryLevel.available,
                InventoryLevel.source_updated_at,
            ).where(bulk.in_values(dialect, InventoryLevel.variant_id, ids))
        )
    }
    home = merchant.location_ref or "default"
    before = {key: value[1] for key, value in levels.items()}
    touched: dict[tuple[int, str], tuple[int, datetime | None]] = {}
    for delivery, event in changes:
        found = variants.get(event.external_id)
        if found is None:
            done.note(delivery, SKIPPED, f"unknown variant {event.external_id}")
            continue
        quantity = event.data.get("quantity")
        if quantity is None:
            done.note(delivery, SKIPPED, f"stock of {event.external_id} is not tracked")
            continue
        assert isinstance(quantity, int)
        location = str(event.data.get("location") or home)
        key = (found[0], location)
        level = levels.get(key)
        if level is not None and _stale(event.occurred_at, level[2]):
            done.note(delivery, SKIPPED, f"stale: {event.external_id} has newer stock")
            continue
        if level is None:
            levels[key] = level = [None, quantity, event.occurred_at]
        else:
            level[1], level[2] = quantity, event.occurred_at or level[2]
        touched[key] = (quantity, level[2])
        done.note(delivery, PROCESSED, "stock updated")
    if not touched:
        return []
    now = datetime.now(UTC)
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
        for (vid, loc), (quantity, seen) in touched.items()
        if levels[(vid, loc)][0] is None
    ]
    updates = [
        {"level_id": levels[key][0], "new_available": quantity, "new_source_updated_at": seen, "now": now}
        for key, (quantity, seen) in touched.items()
        if levels[key][0] is not None
    ]
    if inserts:
        bulk.insert_many(session.connection(), InventoryLevel.__table__, inserts)  # type: ignore[arg-type]
    if updates:
        session.connection().execute(_level_update, updates)
    home_changes = [(vid, q) for (vid, loc), (q, _) in touched.items() if loc == home]
    if not home_changes:
        return []
    held = reserved_by_variant(session, [vid for vid, _ in home_changes], dialect)
    by_id = {v[0]: (ext, v) for ext, v in variants.items()}
    published = []
    for vid, quantity in home_changes:
        ext, (_, pid, tracked, status) = by_id[vid]
        if not tracked or status == DELETED:
            continue
        was = before.get((vid, home))
        old = sellable(was, held.get(vid, 0), merchant.inventory_buffer) if was is not None else None
        new = sellable(quantity, held.get(vid, 0), merchant.inventory_buffer)
        if old == new:
            continue
        published.append(
            events.DomainEvent(
                events.INVENTORY_UPDATED,
                merchant.id,
                {
                    "variant_id": vid,
                    "external_id": ext,
                    "product_id": pid,
                    "location": home,
                    "available": quantity,
                    "sellable": new,
                    "previous_sellable": old,
                },
                now,
            )
        )
    return published


def _product_deleted(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> list[events.DomainEvent]:
    product = session.scalars(
        select(ProductRow).where(
            ProductRow.merchant_id == merchant.id, ProductRow.external_id == event.external_id
        )
    ).first()
    if product is None:
        done.note(delivery, SKIPPED, f"unknown product {event.external_id}")
        return []
    if product.status == DELETED:
        done.note(delivery, SKIPPED, f"product {event.external_id} already deleted")
        return []
    if _stale(event.occurred_at, product.source_updated_at):
        done.note(delivery, SKIPPED, f"stale: product {event.external_id} changed later")
        return []
    now = datetime.now(UTC)
    product.status = DELETED
    product.content_hash = DELETED
    product.source_updated_at = event.occurred_at or product.source_updated_at
    session.execute(
        update(VariantRow)
        .where(VariantRow.product_id == product.id)
        .values(status=DELETED, content_hash=DELETED, updated_at=now)
    )
    done.note(delivery, PROCESSED, "product deleted")
    return [
        events.DomainEvent(
            events.PRODUCT_DELETED,
            merchant.id,
            {"product_id": product.id, "external_id": product.external_id},
            now,
        )
    ]


def _product_changed(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> None:
    stored = session.execute(
        select(ProductRow.source_updated_at).where(
            ProductRow.merchant_id == merchant.id, ProductRow.external_id == event.external_id
        )
    ).first()
    if stored is not None and _stale(event.occurred_at, stored[0]):
        done.note(delivery, SKIPPED, f"stale: product {event.external_id} is already newer")
        return
    if merchant.status != "installed":
        done.note(delivery, SKIPPED, f"merchant is {merchant.status}: no sync")
        return
    # Deliveries name what changed; the store is read again for the product (one run for a whole burst).
    run, created = syncs.record_sync(session, merchant.id, kind="catalog", full=_full_only(merchant))
    if created:
        done.runs.append(run)
    done.note(delivery, PROCESSED, f"catalog sync {run.id}")


def _full_only(merchant: Merchant) -> bool:
    try:
        capabilities = registry.adapter_class(merchant.kind).capabilities
    except Exception:  # an adapter gone from the installation: a full read is the safe choice
        return True
    return Capability.CATALOG_INCREMENTAL not in capabilities


def _order(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> list[events.DomainEvent]:
    status, event_type = ORDER_EVENTS[event.kind]
    order = session.scalars(
        select(Order).where(Order.merchant_id == merchant.id, Order.store_order_ref == event.external_id)
    ).first()
    if order is None:
        done.note(delivery, SKIPPED, f"order {event.external_id} was not placed through Storelink")
        return []
    if order.status == status or order.status in FINAL_ORDER_STATES:
        done.note(delivery, SKIPPED, f"order {order.public_id} is already {order.status}")
        return []
    order.status = status
    done.note(delivery, PROCESSED, f"order {order.public_id} {status}")
    return [
        events.DomainEvent(
            event_type,
            merchant.id,
            {"order_id": order.public_id, "store_order_ref": order.store_order_ref, **_plain(event.data)},
            event.occurred_at or datetime.now(UTC),
        )
    ]


def _uninstalled(
    session: Session, merchant: Merchant, delivery: int, event: StoreEvent, done: Applied
) -> list[events.DomainEvent]:
    if merchant.status == "uninstalled":
        done.note(delivery, SKIPPED, "merchant already uninstalled")
        return []
    merchant.status = "uninstalled"
    merchant.credentials_encrypted = None  # the store revoked them; nothing may use them again
    merchant.problem = "the store uninstalled the app"
    done.note(delivery, PROCESSED, "merchant uninstalled")
    logger.warning("merchant uninstalled by the store", extra={"merchant_id": merchant.id})
    return [
        events.DomainEvent(
            MERCHANT_UNINSTALLED,
            merchant.id,
            {"merchant_id": merchant.id},
            event.occurred_at or datetime.now(UTC),
        )
    ]


def _plain(data: dict[str, object]) -> dict[str, Any]:
    return {
        k: v for k, v in data.items() if isinstance(v, str | int | float | bool | list | dict) or v is None
    }
