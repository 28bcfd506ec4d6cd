"""Reservation rows: the one module that writes the `reservations` table.

Every hold of stock is a `Reservation` row, and the Redis counters (`connector.stock.counters`) are a cache of
them (`connector.stock.rebuild`). This module creates an order's holds and a live pin's allocation row, takes
purchases out of an allocation, releases, expires, confirms and settles holds, and forgets the buyer a hold
names when a customer's data is redacted. Callers in other packages (checkout, live sessions, the order push,
reconcile, store events) compose these functions in their own transactions; a unit test
(`tests/unit/test_reservation_writes.py`) fails when any other module writes the table.

Buyer data: privacy requests are answered by `connector.merchants.privacy`, a layer below stock that must not
import it; the store-events applier (`connector.stock.store_events`), which applies privacy events, calls
`forget_buyers` / `forget_merchant_buyers` here beside the merchants' order redaction.

A release changes the row first and gives the units back in Redis after the commit (the returned `Hold`s,
through `counters.release_in_redis`), gated by the hold, so a release racing a rebuild gives back nothing or
exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from connector.catalog import levels
from connector.domain import registry
from connector.domain.event_types import LIVE_PIN_UPDATED
from connector.infra import outbox
from connector.infra.models import InventoryLevel, LivePin, Merchant, Reservation, Variant
from connector.stock.counters import Hold, allocation_id, pin_key, variant_key

logger = logging.getLogger(__name__)

DEFAULT_HOLD: Final = timedelta(minutes=15)
"""How long an order's hold lasts unless the store confirms the order first (unpaid or abandoned checkout)."""
DEFAULT_LOCATION: Final = levels.DEFAULT_LOCATION

ACTIVE, CONFIRMED = levels.ACTIVE, levels.CONFIRMED
RELEASED, EXPIRED = "released", "expired"

# --- reading under the variants' share lock ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockRow:
    """A variant as checkout needs it, read under the share lock."""

    variant_id: int
    merchant_id: int
    platform_client_id: int | None
    merchant_status: str
    status: str
    price_minor: int
    currency: str
    tracked: bool
    level_version: int
    takes_orders: bool = True
    """The merchant's store accepts orders pushed to it (its adapter declares ORDER_PUSH)."""


def lock_variants(session: Session, variant_ids: Collection[int]) -> dict[int, StockRow]:
    """Read the variants (with their merchant and home-location level version) holding their share lock, so
    no counter of theirs is rebuilt before this transaction ends. Variants that do not exist are absent."""
    if not variant_ids:
        return {}
    ids = sorted(set(variant_ids))
    variants = session.execute(
        select(
            Variant.id,
            Variant.merchant_id,
            Variant.status,
            Variant.price_minor,
            Variant.currency,
            Variant.inventory_tracked,
        )
        .where(Variant.id.in_(ids))
        .order_by(Variant.id)
        .with_for_update(read=True, key_share=True)
    ).all()
    if not variants:
        return {}
    merchants = {
        row.id: row
        for row in session.execute(
            select(
                Merchant.id,
                Merchant.platform_client_id,
                Merchant.status,
                Merchant.location_ref,
                Merchant.kind,
                Merchant.config,
            ).where(Merchant.id.in_({v.merchant_id for v in variants}))
        )
    }
    orderable = {mid: registry.takes_orders(row.kind, row.config or {}) for mid, row in merchants.items()}
    levels = {
        (vid, loc): version
        for vid, loc, version in session.execute(
            select(InventoryLevel.variant_id, InventoryLevel.location_ref, InventoryLevel.version).where(
                InventoryLevel.variant_id.in_(ids)
            )
        )
    }
    out: dict[int, StockRow] = {}
    for v in variants:
        merchant = merchants[v.merchant_id]
        home = merchant.location_ref or DEFAULT_LOCATION
        out[v.id] = StockRow(
            variant_id=v.id,
            merchant_id=v.merchant_id,
            platform_client_id=merchant.platform_client_id,
            merchant_status=merchant.status,
            status=v.status,
            price_minor=v.price_minor,
            currency=v.currency,
            tracked=bool(v.inventory_tracked),
            level_version=levels.get((v.id, home), 0),
            takes_orders=orderable[v.merchant_id],
        )
    return out


# --- creating holds ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewHold:
    """An order line's hold to write (its id was reserved in Redis first, for a counted line)."""

    reservation_id: str
    merchant_id: int
    variant_id: int
    quantity: int
    live_pin_id: int | None = None


@dataclass(frozen=True, slots=True)
class OrderHold:
    """One active hold of an order, for `add_holds`."""

    order_id: int
    hold: NewHold
    buyer_ref: str | None
    expires_at: datetime


def add_holds(session: Session, rows: Sequence[OrderHold], *, now: datetime) -> None:
    """Write the active holds of several orders in the caller's transaction (one Core insert)."""
    if not rows:
        return
    session.connection().execute(
        insert(Reservation.__table__),  # type: ignore[arg-type]
        [
            {
                "id": row.hold.reservation_id,
                "merchant_id": row.hold.merchant_id,
                "variant_id": row.hold.variant_id,
                "order_id": row.order_id,
                "live_pin_id": row.hold.live_pin_id,
                "buyer_ref": row.buyer_ref,
                "quantity": row.hold.quantity,
                "state": ACTIVE,
                "expires_at": row.expires_at,
                "settled_at": None,
                "created_at": now,
                "updated_at": now,
            }
            for row in rows
        ],
    )


def allocate_pin(session: Session, *, pin_id: int, merchant_id: int, variant_id: int, quantity: int) -> str:
    """Write a live pin's allocation row (its units out of the variant's stock); returns its id."""
    hold_id = allocation_id(pin_id)
    session.add(
        Reservation(
            id=hold_id,
            merchant_id=merchant_id,
            variant_id=variant_id,
            live_pin_id=pin_id,
            quantity=quantity,
            state=ACTIVE,
        )
    )
    return hold_id


def take_from_allocation(session: Session, pin_id: int, quantity: int) -> int | None:
    """A purchase of `quantity` out of the pin's active allocation; returns what is left, None when the
    allocation is ended or short (the database disagrees with the counter)."""
    left = (
        session.connection()
        .execute(
            update(Reservation)
            .where(
                Reservation.id == allocation_id(pin_id),
                Reservation.state == ACTIVE,
                Reservation.quantity >= quantity,
            )
            .values(quantity=Reservation.quantity - quantity)
            .returning(Reservation.quantity)
        )
        .scalar()
    )
    return int(left) if left is not None else None


# --- releasing ------------------------------------------------------------------------------------------------


def release_rows(session: Session, rows: Sequence[Reservation], state: str) -> list[Hold]:
    """End the given holds (`released` or `expired`) in the caller's transaction and return what to give back
    in Redis after it commits. An order hold of a pin still selling goes back to the pin's allocation."""
    now = datetime.now(UTC)
    holds: list[Hold] = []
    pins: dict[int, int] = {}
    for row in rows:
        if row.order_id is not None and row.live_pin_id is not None:
            pins[row.live_pin_id] = pins.get(row.live_pin_id, 0) + row.quantity
    selling: set[int] = set()
    for pin_id in sorted(pins):
        back = session.execute(
            update(Reservation)
            .where(Reservation.id == allocation_id(pin_id), Reservation.state == ACTIVE)
            .values(quantity=Reservation.quantity + pins[pin_id])
        ).rowcount  # type: ignore[attr-defined]
        if back:
            selling.add(pin_id)
    if selling:
        _restocked(session, selling, {row.live_pin_id: row.merchant_id for row in rows if row.live_pin_id})
    for row in rows:
        if row.state == ACTIVE:
            row.state = state
        row.settled_at = now
        if row.order_id is not None and row.live_pin_id in selling:
            holds.append(Hold(pin_key(row.live_pin_id), row.id))
        else:
            holds.append(Hold(variant_key(row.variant_id), row.id))
    session.flush()
    return holds


def _restocked(session: Session, pin_ids: Collection[int], merchants: Mapping[int | None, int]) -> None:
    """A pin given units back may cross its thresholds upwards: re-arm its alerts, tell the platform."""
    for pin_id in sorted(pin_ids):
        pin = session.get(LivePin, pin_id)
        left = session.scalar(select(Reservation.quantity).where(Reservation.id == allocation_id(pin_id)))
        if pin is None or left is None:
            continue
        changed = False
        if pin.sold_out_notified and left > 0:
            pin.sold_out_notified, changed = False, True
        if pin.low_stock_notified and left > (pin.low_stock_threshold or 0):
            pin.low_stock_notified, changed = False, True
        if changed:
            outbox.publish(
                session,
                [
                    outbox.DomainEvent(
                        LIVE_PIN_UPDATED,
                        merchants.get(pin_id),
                        {
                            "id": pin.id,
                            "live_session_id": pin.session_id,
                            "variant_id": pin.variant_id,
                            "remaining": int(left),
                            "status": pin.status,
                            "change": "restocked",
                        },
                    )
                ],
            )


def release_order(session: Session, order_id: int, state: str = RELEASED) -> list[Hold]:
    """End every active hold of an order (cancellation); returns the holds to give back after commit."""
    rows = list(
        session.scalars(
            select(Reservation)
            .where(Reservation.order_id == order_id, Reservation.state == ACTIVE)
            .order_by(Reservation.id)
            .with_for_update()
        )
    )
    return release_rows(session, rows, state)


def release_allocation(session: Session, pin_id: int, now: datetime) -> None:
    """End a pin's allocation hold (the pin ended): what is unsold goes back to the variant's stock; what was
    sold stays held by the orders' own rows. The caller rebuilds the counters after the commit."""
    allocation = session.scalar(
        select(Reservation).where(Reservation.id == allocation_id(pin_id)).with_for_update()
    )
    if allocation is not None and allocation.state == ACTIVE:
        allocation.state = RELEASED
        allocation.settled_at = now


# --- confirming and settling ------------------------------------------------------------------------------------


def settle_order(session: Session, order_id: int, state: str) -> None:
    """The store answered for an order: its active holds become `confirmed` (or `released`, rejected)."""
    session.execute(
        update(Reservation)
        .where(Reservation.order_id == order_id, Reservation.state == ACTIVE)
        .values(state=state)
    )


def mark_settled(rows: Iterable[Reservation], now: datetime) -> None:
    """These holds stop counting for good (confirmed holds the store's level caught up with)."""
    for row in rows:
        row.settled_at = now


# --- buyer data -----------------------------------------------------------------------------------------------


def forget_buyers(session: Session, order_ids: Sequence[int], chunk: int = 500) -> None:
    """Redaction of a customer's orders: their holds stop naming the buyer."""
    for start in range(0, len(order_ids), chunk):
        session.execute(
            update(Reservation)
            .where(Reservation.order_id.in_(list(order_ids[start : start + chunk])))
            .values(buyer_ref=None)
            .execution_options(synchronize_session=False)
        )


def forget_merchant_buyers(session: Session, merchant_id: int) -> None:
    """Redaction of a shop: no hold of the merchant names a buyer any more."""
    session.execute(
        update(Reservation)
        .where(Reservation.merchant_id == merchant_id, Reservation.buyer_ref.is_not(None))
        .values(buyer_ref=None)
        .execution_options(synchronize_session=False)
    )
