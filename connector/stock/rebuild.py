"""Rebuilding stock counters from the database: a counter is written whole from the reservation rows under a
database lock, so it never counts a hold twice nor misses one.

A counter is (re)built under a database lock: the variant row `FOR UPDATE` (pin: its allocation row), read,
written to Redis with a fresh generation, then committed. Writers that add rows take the same lock in share
mode (variant, `connector.stock.holds.lock_variants`) or update the allocation row (pin) before committing, so:

- a writer that reserved in Redis *before* taking the lock checks, once it holds the lock, that the counter
  still has the generation it reserved against; otherwise a rebuild ran in between without its row, and the
  writer rolls back and starts again (the live purchase path, which must refuse without touching the
  database);
- a writer that takes the lock *first* and then reserves needs no check: no rebuild can read the database
  until it commits, and a counter lost meanwhile is rebuilt after that commit, with its row.

Two rebuilders serialize on the lock and the second sees the counter already there (`only_missing`), so a
counter is never counted twice. A release changes the row first and gives the units back in Redis after the
commit, gated by the hold, so a release racing a rebuild gives back nothing or exactly once.

Which rows hold stock of a variant is decided in one place, `connector.catalog.levels.holding()` (active holds,
and confirmed ones until the store's level has caught up with the sale), for the counters here as for the
catalog and the stock events. This module only reads rows.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.catalog import levels
from connector.domain.buyers import buyer_key
from connector.infra import runtime
from connector.infra.models import InventoryLevel, LivePin, LiveSession, Merchant, Order, Reservation, Variant
from connector.stock.counters import (
    IDEMPOTENCY_MARK_SECONDS,
    allocation_id,
    buyers_key,
    epoch,
    holds_key,
    idempotency_mark,
    new_gen,
    pin_key,
    set_counter,
    variant_key,
)
from connector.stock.holds import ACTIVE, CONFIRMED, DEFAULT_LOCATION

logger = logging.getLogger(__name__)


@dataclass
class VariantState:
    """A variant counter as the database says it should be."""

    available: int
    buffer: int
    level_version: int
    held: int = 0
    holds: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return self.available - self.held - self.buffer


def home_level(session: Session, variant_id: int, merchant: Merchant) -> InventoryLevel | None:
    """The variant's level at the merchant's selling location."""
    return session.scalar(
        select(InventoryLevel).where(
            InventoryLevel.variant_id == variant_id,
            InventoryLevel.location_ref == (merchant.location_ref or DEFAULT_LOCATION),
        )
    )


def variant_state(session: Session, variant: Variant, merchant: Merchant) -> VariantState:
    """Sellable stock of a tracked variant from the database: store level minus holds minus buffer."""
    level = home_level(session, variant.id, merchant)
    state = VariantState(
        available=level.available if level is not None else 0,
        buffer=merchant.inventory_buffer,
        level_version=level.version if level is not None else 0,
    )
    rows = session.execute(
        levels.holding_rows(
            select(Reservation.id, Reservation.quantity, Reservation.state).where(
                Reservation.variant_id == variant.id
            )
        )
    ).all()
    for r in rows:
        state.held += r.quantity
        if r.state == ACTIVE:
            state.holds[r.id] = r.quantity
    return state


def held_by_variant(session: Session, variant_ids: Collection[int]) -> dict[int, int]:
    """Units every hold keeps out of each variant's sellable stock (`levels.reserved_by_variant`, the one
    definition), with a 0 for each variant without holds."""
    held = levels.reserved_by_variant(session, variant_ids)
    return {vid: held.get(vid, 0) for vid in sorted(set(variant_ids))}


def rebuild_variant(rt: runtime.Runtime, variant_id: int, *, only_missing: bool = True) -> bool:
    """Write the variant counter from the database under the variant's exclusive lock; with `only_missing`,
    keep a counter another rebuilder wrote first. Returns whether it wrote. Untracked variants have none."""
    with rt.db.session() as session:
        variant = session.scalar(select(Variant).where(Variant.id == variant_id).with_for_update())
        if variant is None:
            return False
        counter = variant_key(variant_id)
        if not variant.inventory_tracked:
            rt.redis.delete(counter, holds_key(counter), buyers_key(counter))
            return False
        if only_missing and rt.redis.exists(counter):
            return False
        merchant = session.get(Merchant, variant.merchant_id)
        assert merchant is not None
        state = variant_state(session, variant, merchant)
        holds = {rid: f"{q}||" for rid, q in state.holds.items()}
        fields = {"n": state.remaining, "gen": new_gen(), "lv": state.level_version}
        wrote = set_counter(rt.redis, counter, fields, holds, {}, only_missing=only_missing)
    if wrote:
        logger.info(
            "variant counter rebuilt",
            extra={
                "variant_id": variant_id,
                "remaining": state.remaining,
                "level_version": state.level_version,
            },
        )
    return wrote


@dataclass(frozen=True, slots=True)
class PinState:
    remaining: int
    on_sale: bool
    holds: dict[str, str]
    buyers: dict[str, int]


def pin_state(session: Session, pin: LivePin, live: LiveSession, allocation: Reservation | None) -> PinState:
    """A pin counter as the database says it should be."""
    remaining = allocation.quantity if allocation is not None and allocation.state == ACTIVE else 0
    on_sale = pin.status == "active" and live.status == "live" and remaining >= 0 and allocation is not None
    holds: dict[str, str] = {}
    buyers: dict[str, int] = {}
    rows = session.execute(
        select(
            Reservation.id,
            Reservation.quantity,
            Reservation.state,
            Reservation.buyer_ref,
            Reservation.expires_at,
        ).where(
            Reservation.live_pin_id == pin.id,
            Reservation.order_id.is_not(None),
            Reservation.state.in_((ACTIVE, CONFIRMED)),
        )
    ).all()
    for r in rows:
        buyer = buyer_key(r.buyer_ref) if r.buyer_ref else ""  # holds written before keys were normalized
        if buyer:
            buyers[buyer] = buyers.get(buyer, 0) + r.quantity
        if r.state == ACTIVE:
            holds[r.id] = f"{r.quantity}|{epoch(r.expires_at)}|{buyer}"
    return PinState(remaining, on_sale, holds, buyers)


def rebuild_pin(rt: runtime.Runtime, pin_id: int, *, only_missing: bool = True) -> bool:
    """Write the pin counter (allocation left, price, limit, buyers, holds) from the database under the lock
    of the pin's allocation row, and the idempotency marks of the session's orders."""
    with rt.db.session() as session:
        allocation = session.scalar(
            select(Reservation).where(Reservation.id == allocation_id(pin_id)).with_for_update()
        )
        counter = pin_key(pin_id)
        if only_missing and rt.redis.exists(counter):
            return False
        pin = session.get(LivePin, pin_id)
        if pin is None:
            rt.redis.delete(counter, holds_key(counter), buyers_key(counter))
            return False
        live = session.get(LiveSession, pin.session_id)
        assert live is not None
        state = pin_state(session, pin, live, allocation)
        fields = {
            "n": state.remaining,
            "gen": new_gen(),
            "act": "1" if state.on_sale else "0",
            "price": str(pin.flash_price_minor),
            "cur": pin.currency,
            "lim": pin.per_buyer_limit or 0,
            "until": epoch(pin.countdown_ends_at),
        }
        marks = session.execute(
            select(Order.platform_client_id, Order.idempotency_key, Order.request_hash).where(
                Order.live_session_id == pin.session_id, Order.platform_client_id.is_not(None)
            )
        ).all()
        wrote = set_counter(rt.redis, counter, fields, state.holds, state.buyers, only_missing=only_missing)
        if wrote and marks:
            pipe = rt.redis.pipeline(transaction=False)
            for client_id, key, request_hash in marks:
                if client_id is None:
                    continue
                pipe.set(idempotency_mark(client_id, key), request_hash, ex=IDEMPOTENCY_MARK_SECONDS)
            pipe.execute()
    if wrote:
        logger.info(
            "pin counter rebuilt",
            extra={"pin_id": pin_id, "remaining": state.remaining, "on_sale": state.on_sale},
        )
    return wrote
