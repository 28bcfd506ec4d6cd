"""Stock's part of the periodic reconcile: expire overdue holds, give back holds released without their
counter, and settle confirmed holds the store's level reflects.

The job that runs these (with the end of pins whose countdown is over) is composed above stock, in
`connector.orders.reconcile`, which knows how long an order's push is still being tried.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, select

from connector.catalog import levels
from connector.infra import runtime
from connector.infra.models import Merchant, Order, Reservation
from connector.stock import counters, holds
from connector.stock.rebuild import home_level

logger = logging.getLogger(__name__)

RECONCILE_BATCH: Final = 500
SETTLE_AFTER: Final = timedelta(days=2)
"""A confirmed hold whose store level never moved stops counting after this long (an inventory poll has run)."""
ACCEPTED_ORDER: Final = "accepted"


def expire_holds(
    rt: runtime.Runtime, now: datetime, *, pushing_below: int, merchant_id: int | None = None
) -> int:
    """Release overdue holds, except those of an order whose push is still being tried (`accepted`, with fewer
    than `pushing_below` attempts): its buyer has paid and the store may yet take it, so its units stay held
    until it is confirmed, rejected or given up on (the sweeper's last attempt); releasing them sooner would
    sell them twice."""
    pushing = (
        select(Order.id)
        .where(
            Order.id == Reservation.order_id,
            Order.status == ACCEPTED_ORDER,
            Order.push_attempts < pushing_below,
        )
        .exists()
    )
    with rt.db.session() as session:
        rows = list(
            session.scalars(
                select(Reservation)
                .where(Reservation.state == holds.ACTIVE, Reservation.expires_at < now, ~pushing)
                .where(*_of(merchant_id))
                .order_by(Reservation.id)
                .limit(RECONCILE_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        given = holds.release_rows(session, rows, holds.EXPIRED)
    counters.release_in_redis(rt.redis, given)
    if rows:
        logger.info("holds expired", extra={"count": len(rows)})
    return len(rows)


def _of(merchant_id: int | None) -> list[ColumnElement[bool]]:
    """The filter of one merchant's holds (none: every merchant's)."""
    return [] if merchant_id is None else [Reservation.merchant_id == merchant_id]


def give_back(rt: runtime.Runtime, merchant_id: int | None = None) -> int:
    """Holds released elsewhere without their counter (the push job's rejection): give them back now."""
    with rt.db.session() as session:
        rows = list(
            session.scalars(
                select(Reservation)
                .where(
                    Reservation.state.in_((holds.RELEASED, holds.EXPIRED)),
                    Reservation.settled_at.is_(None),
                    *_of(merchant_id),
                )
                .order_by(Reservation.id)
                .limit(RECONCILE_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        given = holds.release_rows(session, rows, holds.RELEASED)
    counters.release_in_redis(rt.redis, given)
    return len(rows)


def settle_confirmed(rt: runtime.Runtime, now: datetime) -> int:
    """Confirmed holds whose store level caught up stop counting for good (the rows stop being read)."""
    with rt.db.session() as session:
        rows = session.execute(
            select(Reservation, Merchant)
            .join(Merchant, Merchant.id == Reservation.merchant_id)
            .where(Reservation.state == holds.CONFIRMED, Reservation.settled_at.is_(None))
            .order_by(Reservation.id)
            .limit(RECONCILE_BATCH)
        ).all()
        done = [
            row
            for row, merchant in rows
            if levels.caught_up(home_level(session, row.variant_id, merchant), row)
            or row.updated_at < now - SETTLE_AFTER
        ]
        holds.mark_settled(done, now)
    return len(done)
