"""The commission ledger: accruals when an attributed order is confirmed, reversals when it is cancelled or
refunded, each written in the transaction that changed the order.

`on_events` is a `connector.infra.outbox.Subscriber` the composition roots install: orders never import this
package, the ledger follows their events (`order.confirmed`, `order.cancelled`, `order.refunded`).

- One accrual per attributed line with a rate: `commission(net, rate)` (connector.affiliates.amounts), the rate
  in force for the creator and product, or the link's locked rate while its lock lasts; `pending` until
  `hold_until` (confirmation + the program's hold).
- A refund or cancellation adds one reversal per touched line, so that the line's entries sum to the commission
  on what it still keeps (`amounts.kept_base` of the cumulative refunded units and amounts, whatever order
  the refunds came in): pro rata by refunded quantity when the store names units, by amount otherwise (an
  amount without lines is shared by the lines' nets), everything left for a cancellation or full refund.
- Entries are never edited (only their state moves, `commission_transitions` keeps the history); (line,
  attribution, cause) is unique, so a replayed event adds nothing. A reversal after payout is simply a
  negative entry, approved with or after its accrual and paid in the creator's next payout.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.affiliates import amounts, links, programs
from connector.domain import event_types
from connector.domain.money import exponent
from connector.domain.timestamps import iso
from connector.infra import outbox
from connector.infra.models import (
    AffiliateLink,
    CommissionEntry,
    CommissionTransition,
    LiveSession,
    Order,
    OrderLine,
    Variant,
)

logger = logging.getLogger(__name__)

ACCRUAL, REVERSAL = "accrual", "reversal"
PENDING, APPROVED, PAID = "pending", "approved", "paid"
ORDER_CAUSE, CANCEL_CAUSE = "order", "cancel"
HANDLED = frozenset({event_types.ORDER_CONFIRMED, event_types.ORDER_CANCELLED, event_types.ORDER_REFUNDED})


def new_entry_id() -> str:
    return "com_" + secrets.token_hex(10)


def attribution_ref(order: Order) -> str:
    """What earned an order's commission: its link, else the live session (or the program) it was sold in."""
    if order.affiliate_link_id is not None:
        return f"link:{order.affiliate_link_id}"
    if order.live_session_id is not None:
        return f"live:{order.live_session_id}"
    return f"program:{order.affiliate_program_id}"


def entry_body(entry: CommissionEntry, order_public_id: str | None = None) -> dict[str, Any]:
    return {
        "id": entry.public_id,
        "merchant_id": entry.merchant_id,
        "creator_ref": entry.creator_ref,
        "program_id": entry.program_id,
        "link_id": entry.link_id,
        "order_id": order_public_id,
        "kind": entry.kind,
        "cause": entry.cause,
        "base_minor": entry.base_minor,
        "rate_bps": entry.rate_bps,
        "amount_minor": entry.amount_minor,
        "currency": entry.currency,
        "state": entry.state,
        "hold_until": iso(entry.hold_until),
        "created_at": iso(entry.created_at),
    }


# --- lines and what they keep ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    row: OrderLine
    product_id: int
    variant_ref: str
    net: int


def _lines(session: Session, order: Order) -> list[Line]:
    rows = session.execute(
        select(OrderLine, Variant.product_id, Variant.external_id)
        .join(Variant, Variant.id == OrderLine.variant_id)
        .where(OrderLine.order_id == order.id)
        .order_by(OrderLine.id)
    ).all()
    nets = amounts.line_nets(
        [amounts.LineAmounts(r[0].quantity, r[0].unit_price_minor, r[0].discount_minor) for r in rows],
        order.discount_minor,
    )
    return [Line(row, product_id, ref, net) for (row, product_id, ref), net in zip(rows, nets, strict=True)]


@dataclass
class LineState:
    """A line's entries: their sum, and the cumulative refunds they record."""

    accrual: CommissionEntry
    total: int = 0
    refunded_quantity: int = 0
    refunded_amount: int = 0

    def kept(self, line: Line, more_quantity: int = 0, more_amount: int = 0) -> int:
        return amounts.kept_base(
            line.net,
            line.row.quantity,
            self.refunded_quantity + more_quantity,
            self.refunded_amount + more_amount,
        )


def _states(session: Session, order: Order, ref: str) -> dict[int, LineState]:
    entries = session.scalars(
        select(CommissionEntry)
        .where(CommissionEntry.order_id == order.id, CommissionEntry.attribution_ref == ref)
        .order_by(CommissionEntry.id)
    ).all()
    states = {e.order_line_id: LineState(e) for e in entries if e.kind == ACCRUAL}
    for entry in entries:
        state = states.get(entry.order_line_id)
        if state is None:
            continue
        state.total += entry.amount_minor
        if entry.kind == REVERSAL:
            if entry.refunded_quantity is not None:
                state.refunded_quantity += entry.refunded_quantity
            else:
                state.refunded_amount -= entry.base_minor
    return states


def _existing_causes(session: Session, order: Order, ref: str) -> set[tuple[int, str]]:
    return {
        (line_id, cause)
        for line_id, cause in session.execute(
            select(CommissionEntry.order_line_id, CommissionEntry.cause).where(
                CommissionEntry.order_id == order.id, CommissionEntry.attribution_ref == ref
            )
        )
    }


def _add(session: Session, entry: CommissionEntry, now: datetime) -> None:
    session.add(entry)
    session.flush()
    session.add(CommissionTransition(entry_id=entry.id, from_state=None, to_state=entry.state, at=now))


# --- accrual -------------------------------------------------------------------------------------------------------


def _rates(session: Session, order: Order, lines: Sequence[Line], now: datetime) -> dict[int, programs.Rate]:
    assert order.affiliate_creator_ref is not None
    product_ids = list({line.product_id for line in lines})
    live = session.get(LiveSession, order.live_session_id) if order.live_session_id else None
    if live is not None and live.affiliate_program_id is not None:  # the session's program, and no other
        return programs.program_rates(
            session, live.affiliate_program_id, order.affiliate_creator_ref, product_ids
        )
    found = programs.current_rates(session, order.merchant_id, order.affiliate_creator_ref, product_ids)
    link = session.get(AffiliateLink, order.affiliate_link_id) if order.affiliate_link_id else None
    if link is not None and link.product_id in found:
        rate = found[link.product_id]
        locked = links.effective_rate(link, rate.rate_bps, now)
        if locked is not None and locked != rate.rate_bps:
            found[link.product_id] = programs.Rate(
                rate.program_id,
                locked,
                rate.attribution_window_seconds,
                rate.hold_seconds,
                rate.rate_lock_seconds,
            )
    return found


def accrue(session: Session, order: Order, now: datetime) -> list[CommissionEntry]:
    """One accrual per line of the attributed `order` that earns commission (none twice)."""
    if not order.affiliate_creator_ref:
        return []
    ref = attribution_ref(order)
    done = _existing_causes(session, order, ref)
    lines = _lines(session, order)
    rates = _rates(session, order, lines, now)
    made: list[CommissionEntry] = []
    for line in lines:
        rate = rates.get(line.product_id)
        if rate is None or (line.row.id, ORDER_CAUSE) in done:
            continue
        amount = amounts.commission(line.net, rate.rate_bps)
        if amount == 0:
            continue
        entry = CommissionEntry(
            public_id=new_entry_id(),
            merchant_id=order.merchant_id,
            creator_ref=order.affiliate_creator_ref,
            program_id=rate.program_id,
            link_id=order.affiliate_link_id,
            attribution_ref=ref,
            order_id=order.id,
            order_line_id=line.row.id,
            kind=ACCRUAL,
            cause=ORDER_CAUSE,
            base_minor=line.net,
            rate_bps=rate.rate_bps,
            amount_minor=amount,
            currency=order.currency,
            state=PENDING,
            hold_until=now + timedelta(seconds=rate.hold_seconds),
            created_at=now,
        )
        _add(session, entry, now)
        made.append(entry)
    return made


# --- reversals -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refund:
    """What one refund (or a cancellation) gives back: everything, units per line, or amounts."""

    cause: str
    everything: bool = False
    quantities: Mapping[int, int] | None = None
    """order line id -> refunded units."""
    amounts: Mapping[int, int] | None = None
    """order line id -> refunded amount (minor units of the line's net) refunded without units."""


def reverse(session: Session, order: Order, refund: Refund, now: datetime) -> list[CommissionEntry]:
    """The reversals `refund` makes on `order`'s accruals (none for a cause already recorded)."""
    if not order.affiliate_creator_ref:
        return []
    ref = attribution_ref(order)
    states = _states(session, order, ref)
    if not states:
        return []
    done = _existing_causes(session, order, ref)
    made: list[CommissionEntry] = []
    for line in _lines(session, order):
        state = states.get(line.row.id)
        if state is None or (line.row.id, refund.cause) in done:
            continue
        before = state.kept(line)
        units = line.row.quantity - state.refunded_quantity if refund.everything else 0
        units = units or (refund.quantities or {}).get(line.row.id, 0)
        amount = 0 if units else (refund.amounts or {}).get(line.row.id, 0)
        if before == 0 or (units <= 0 and amount <= 0):
            continue
        after = state.kept(line, units, amount)
        accrual = state.accrual
        entry = CommissionEntry(
            public_id=new_entry_id(),
            merchant_id=accrual.merchant_id,
            creator_ref=accrual.creator_ref,
            program_id=accrual.program_id,
            link_id=accrual.link_id,
            attribution_ref=ref,
            order_id=order.id,
            order_line_id=line.row.id,
            kind=REVERSAL,
            cause=refund.cause,
            reverses_entry_id=accrual.id,
            base_minor=after - before if units else -amount,
            refunded_quantity=units if units else None,
            rate_bps=accrual.rate_bps,
            amount_minor=amounts.commission(after, accrual.rate_bps) - state.total,
            currency=accrual.currency,
            state=PENDING,
            hold_until=max(accrual.hold_until, now) if accrual.state == PENDING else now,
            created_at=now,
        )
        _add(session, entry, now)
        made.append(entry)
    return made


def _minor(value: Any, currency: str) -> int:
    """A store's decimal amount ("12.50") or integer minor units, as minor units; 0 when unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    try:
        return max(0, int(Decimal(str(value)).scaleb(exponent(currency))))
    except (InvalidOperation, ValueError):
        return 0


def refund_of(order: Order, lines: Sequence[Line], data: Mapping[str, Any]) -> Refund:
    """The refund an `order.refunded` event describes: lines by variant (internal id or store ref) with
    units or amounts, else an amount shared by the lines' nets, else the whole order."""
    refund_id = data.get("refund_id")
    cause = f"refund:{refund_id}" if refund_id else "refund"
    by_variant: dict[Any, Line] = {line.row.variant_id: line for line in lines}
    by_variant.update({line.variant_ref: line for line in lines})
    quantities: dict[int, int] = {}
    line_amounts: dict[int, int] = {}
    for item in data.get("lines") or []:
        if not isinstance(item, Mapping):
            continue
        line = by_variant.get(item.get("variant_id")) or by_variant.get(item.get("variant_ref"))
        if line is None:
            continue
        quantity = item.get("quantity")
        if isinstance(quantity, int) and quantity > 0:
            quantities[line.row.id] = quantities.get(line.row.id, 0) + quantity
        elif item.get("amount_minor") is not None or item.get("amount") is not None:
            value = item.get("amount_minor", item.get("amount"))
            line_amounts[line.row.id] = line_amounts.get(line.row.id, 0) + _minor(value, order.currency)
    if quantities or line_amounts:
        return Refund(cause, quantities=quantities, amounts=line_amounts)
    whole = data.get("amount_minor", data.get("amount"))
    if whole is not None and not data.get("full"):
        shares = amounts.share_of_order(
            _minor(whole, order.currency), order.total_minor, [line.net for line in lines]
        )
        return Refund(cause, amounts={line.row.id: share for line, share in zip(lines, shares, strict=True)})
    return Refund(cause, everything=True)


# --- the subscriber -----------------------------------------------------------------------------------------------


def _event(kind: str, entry: CommissionEntry, order: Order) -> outbox.DomainEvent:
    return outbox.DomainEvent(kind, entry.merchant_id, entry_body(entry, order.public_id))


def apply(session: Session, row: Mapping[str, Any]) -> list[outbox.DomainEvent]:
    """The ledger's part of one published order event: the entries it writes, as commission events."""
    data = row.get("data") or {}
    public_id = data.get("order_id")
    if not isinstance(public_id, str):
        return []
    order = session.scalars(
        select(Order).where(Order.public_id == public_id, Order.affiliate_creator_ref.is_not(None))
    ).first()
    if order is None:
        return []
    now = datetime.now(UTC)
    if row["type"] == event_types.ORDER_CONFIRMED:
        return [_event(event_types.COMMISSION_CREATED, e, order) for e in accrue(session, order, now)]
    if row["type"] == event_types.ORDER_CANCELLED:
        refund = Refund(CANCEL_CAUSE, everything=True)
    else:
        refund = refund_of(order, _lines(session, order), data)
    made = reverse(session, order, refund, now)
    if made:
        logger.info(
            "commission reversed",
            extra={"order_id": public_id, "cause": refund.cause, "entries": len(made)},
        )
    return [_event(event_types.COMMISSION_REVERSED, e, order) for e in made]


def on_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Subscriber: the ledger's entries for the order events among `rows`, in the same transaction."""
    published: list[outbox.DomainEvent] = []
    for row in rows:
        if row.get("type") in HANDLED:
            published += apply(session, row)
    if published:
        outbox.publish(session, published)


def install() -> None:
    """Follow order events (call from every composition root that publishes them)."""
    outbox.subscribe(on_events)


def uninstall() -> None:
    outbox.unsubscribe(on_events)
