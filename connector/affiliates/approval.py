"""Approval: pending commission becomes `approved` once its hold is over (a scheduler job).

An accrual is approved when its hold ended and its order is neither cancelled nor fully refunded (nothing of
what it earned on is kept): a fully reversed accrual stays pending with its reversals, netting to zero. A
reversal is approved when its hold ended and the accrual it reverses was approved (or paid), so that it is
carried into the creator's next payout. Each entry moves once (a concurrent run skips what the other took);
every move is recorded in `commission_transitions` and announced as `commission.approved`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from connector.affiliates.ledger import ACCRUAL, APPROVED, PAID, PENDING, REVERSAL, entry_body
from connector.domain import event_types
from connector.domain.orders import OrderStatus
from connector.infra import outbox, runtime
from connector.infra.models import CommissionEntry, CommissionTransition, Order

logger = logging.getLogger(__name__)

BATCH: Final = 500


def _kept(session: Session, order_ids: Sequence[int]) -> dict[tuple[int, str], int]:
    """What each (order, attribution) still earns on: the sum of its entries' bases."""
    return {
        (order_id, ref): int(total or 0)
        for order_id, ref, total in session.execute(
            select(
                CommissionEntry.order_id,
                CommissionEntry.attribution_ref,
                func.sum(CommissionEntry.base_minor),
            )
            .where(CommissionEntry.order_id.in_(list(order_ids)))
            .group_by(CommissionEntry.order_id, CommissionEntry.attribution_ref)
        )
    }


def _due_accruals(session: Session, now: datetime, limit: int) -> list[tuple[CommissionEntry, str]]:
    rows = session.execute(
        select(CommissionEntry, Order.public_id)
        .join(Order, Order.id == CommissionEntry.order_id)
        .where(
            CommissionEntry.kind == ACCRUAL,
            CommissionEntry.state == PENDING,
            CommissionEntry.hold_until <= now,
            Order.status != OrderStatus.CANCELLED.value,
        )
        .order_by(CommissionEntry.id)
        .limit(limit)
    ).all()
    kept = _kept(session, list({entry.order_id for entry, _ in rows}))
    return [
        (entry, public_id) for entry, public_id in rows if kept[(entry.order_id, entry.attribution_ref)] > 0
    ]


def _due_reversals(session: Session, now: datetime, limit: int) -> list[tuple[CommissionEntry, str]]:
    reversed_ = aliased(CommissionEntry)
    rows = session.execute(
        select(CommissionEntry, Order.public_id)
        .join(reversed_, reversed_.id == CommissionEntry.reverses_entry_id)
        .join(Order, Order.id == CommissionEntry.order_id)
        .where(
            CommissionEntry.kind == REVERSAL,
            CommissionEntry.state == PENDING,
            CommissionEntry.hold_until <= now,
            reversed_.state.in_((APPROVED, PAID)),
        )
        .order_by(CommissionEntry.id)
        .limit(limit)
    ).all()
    return [(entry, public_id) for entry, public_id in rows]


def _approve(
    session: Session, due: Sequence[tuple[CommissionEntry, str]], now: datetime
) -> list[outbox.DomainEvent]:
    events: list[outbox.DomainEvent] = []
    for entry, public_id in due:
        moved = session.execute(
            update(CommissionEntry)
            .where(CommissionEntry.id == entry.id, CommissionEntry.state == PENDING)
            .values(state=APPROVED, approved_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not moved:
            continue
        session.add(CommissionTransition(entry_id=entry.id, from_state=PENDING, to_state=APPROVED, at=now))
        session.refresh(entry)
        events.append(
            outbox.DomainEvent(
                event_types.COMMISSION_APPROVED, entry.merchant_id, entry_body(entry, public_id)
            )
        )
    session.flush()
    return events


def approve_due(rt: runtime.Runtime | None = None, now: datetime | None = None, limit: int = BATCH) -> int:
    """Approve what is due at `now` (a batch; the next run takes the rest). Returns how many moved."""
    rt = rt or runtime.current()
    now = now or datetime.now(UTC)
    with rt.db.session() as session:
        events = _approve(session, _due_accruals(session, now, limit), now)
        events += _approve(session, _due_reversals(session, now, limit), now)
        outbox.publish(session, events)
    if events:
        logger.info("commission approved", extra={"entries": len(events)})
    return len(events)
