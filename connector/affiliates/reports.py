"""Reading the affiliate tables: a creator's links, clicks and earnings; a merchant's commissions, one by one too.

Queries only: nothing here writes. Every function takes the reader's `scope`, a subquery of the merchant ids it
may see (`connector.api.common.visible_merchants` for a platform client), or None for support, who sees every
merchant. A record outside the scope is "not found", never "forbidden".

Listings are newest first and paged by id: a function returns up to `limit` rows after `before` (an id) and
whether more follow. Earnings and totals are sums of `amount_minor` per currency, never mixed across
currencies; a creator's balance is the plain sum of its entries not yet paid (pending and approved), so a
reversal made after a payout, a negative entry of its own, is carried into the next balance.
The CSV export of commissions lives in `connector.affiliates.export`, programs in
`connector.affiliates.program_reports`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from connector.domain.errors import NotFoundError
from connector.infra.models import (
    AffiliateClick,
    AffiliateLink,
    AffiliatePayout,
    AffiliateProgram,
    CommissionEntry,
    CommissionTransition,
    Merchant,
    Order,
    OrderLine,
    Product,
)

logger = logging.getLogger(__name__)

STATES = ("pending", "approved", "paid")
UNPAID = ("pending", "approved")
KINDS = ("accrual", "reversal")
CLICK_KINDS = ("click", "view", "tap")

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])
Scope = Select[int] | None
"""The merchant ids a reader may see (a subquery), or None for every merchant."""


def in_scope(query: SelectT, column: Any, scope: Scope) -> SelectT:
    """`query` limited to rows whose merchant `column` is in `scope`."""
    return query if scope is None else query.where(column.in_(scope))


def require_merchant(session: Session, merchant_id: int, scope: Scope) -> Merchant:
    """The merchant `merchant_id` if the reader may see it, else NotFoundError `merchant_not_found`."""
    merchant = session.scalar(
        in_scope(select(Merchant).where(Merchant.id == merchant_id), Merchant.id, scope)
    )
    if merchant is None:
        raise NotFoundError(f"merchant {merchant_id} not found", code="merchant_not_found")
    return merchant


# --- a creator's links and clicks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A creator's link with its counted clicks, views and taps."""

    id: int
    code: str
    merchant_id: int
    program_id: int
    creator_ref: str
    product_id: int
    product_title: str
    variant_id: int | None
    locked_rate_bps: int
    locked_until: datetime
    created_at: datetime
    clicks: dict[str, int]


def creator_links(
    session: Session, creator_ref: str, scope: Scope, *, before: int | None = None, limit: int = 50
) -> tuple[list[LinkRow], bool]:
    """The creator's links, newest first, each with its click count per kind (every kind present, 0 or more)."""
    query = (
        select(AffiliateLink, Product.title)
        .join(Product, Product.id == AffiliateLink.product_id)
        .where(AffiliateLink.creator_ref == creator_ref)
        .order_by(AffiliateLink.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(AffiliateLink.id < before)
    rows = session.execute(in_scope(query, AffiliateLink.merchant_id, scope)).all()
    page = rows[:limit]
    counts: dict[int, dict[str, int]] = {link.id: dict.fromkeys(CLICK_KINDS, 0) for link, _ in page}
    if counts:
        for link_id, kind, count in session.execute(
            select(AffiliateClick.link_id, AffiliateClick.kind, func.count())
            .where(AffiliateClick.link_id.in_(list(counts)))
            .group_by(AffiliateClick.link_id, AffiliateClick.kind)
        ):
            counts[link_id][kind] = int(count)
    links = [
        LinkRow(
            id=link.id,
            code=link.code,
            merchant_id=link.merchant_id,
            program_id=link.program_id,
            creator_ref=link.creator_ref,
            product_id=link.product_id,
            product_title=title,
            variant_id=link.variant_id,
            locked_rate_bps=link.locked_rate_bps,
            locked_until=link.locked_until,
            created_at=link.created_at,
            clicks=counts[link.id],
        )
        for link, title in page
    ]
    return links, len(rows) > limit


@dataclass(frozen=True, slots=True)
class ClickRow:
    """One counted click (or view, tap) on a creator's link. The visitor's keyed hash is not shown."""

    id: int
    click_id: str
    kind: str
    link_id: int
    link_code: str
    merchant_id: int
    product_id: int
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ClickFilter:
    kind: str | None = None
    link_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def creator_clicks(
    session: Session,
    creator_ref: str,
    scope: Scope,
    filters: ClickFilter = ClickFilter(),
    *,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[ClickRow], bool]:
    """The clicks on the creator's links, newest first; `since` inclusive, `until` exclusive."""
    query = (
        select(AffiliateClick, AffiliateLink)
        .join(AffiliateLink, AffiliateLink.id == AffiliateClick.link_id)
        .where(AffiliateLink.creator_ref == creator_ref)
        .order_by(AffiliateClick.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(AffiliateClick.id < before)
    if filters.kind is not None:
        query = query.where(AffiliateClick.kind == filters.kind)
    if filters.link_code is not None:
        query = query.where(AffiliateLink.code == filters.link_code)
    if filters.since is not None:
        query = query.where(AffiliateClick.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AffiliateClick.occurred_at < filters.until)
    rows = session.execute(in_scope(query, AffiliateLink.merchant_id, scope)).all()
    clicks = [
        ClickRow(
            id=click.id,
            click_id=click.click_id,
            kind=click.kind,
            link_id=link.id,
            link_code=link.code,
            merchant_id=link.merchant_id,
            product_id=link.product_id,
            occurred_at=click.occurred_at,
        )
        for click, link in rows[:limit]
    ]
    return clicks, len(rows) > limit


# --- earnings and totals ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateTotal:
    """The sum of the entries in one state and currency."""

    state: str
    currency: str
    amount_minor: int
    entries: int


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """What one currency's entries add up to: per state, the unpaid balance (pending + approved) and in all."""

    currency: str
    pending_minor: int = 0
    approved_minor: int = 0
    paid_minor: int = 0
    balance_minor: int = 0
    total_minor: int = 0
    entries: int = 0


@dataclass(frozen=True, slots=True)
class Earnings:
    creator_ref: str
    by_state: list[StateTotal]
    currencies: list[CurrencyTotal]


def _fold(sums: Sequence[StateTotal]) -> list[CurrencyTotal]:
    """Per-state sums of one key folded into one CurrencyTotal per currency, by currency."""
    out: dict[str, dict[str, int]] = {}
    for row in sums:
        acc = out.setdefault(row.currency, dict.fromkeys(STATES, 0) | {"entries": 0})
        acc[row.state] = acc.get(row.state, 0) + row.amount_minor
        acc["entries"] += row.entries
    return [
        CurrencyTotal(
            currency=currency,
            pending_minor=acc["pending"],
            approved_minor=acc["approved"],
            paid_minor=acc["paid"],
            balance_minor=sum(acc[state] for state in UNPAID),
            total_minor=sum(acc[state] for state in STATES),
            entries=acc["entries"],
        )
        for currency, acc in sorted(out.items())
    ]


def creator_earnings(
    session: Session, creator_ref: str, scope: Scope, *, merchant_id: int | None = None
) -> Earnings:
    """The creator's entries summed per (state, currency), and per currency with the balance not yet paid."""
    query = (
        select(
            CommissionEntry.state,
            CommissionEntry.currency,
            func.coalesce(func.sum(CommissionEntry.amount_minor), 0),
            func.count(),
        )
        .where(CommissionEntry.creator_ref == creator_ref)
        .group_by(CommissionEntry.state, CommissionEntry.currency)
        .order_by(CommissionEntry.currency, CommissionEntry.state)
    )
    if merchant_id is not None:
        query = query.where(CommissionEntry.merchant_id == merchant_id)
    sums = [
        StateTotal(state=state, currency=currency, amount_minor=int(amount), entries=int(count))
        for state, currency, amount, count in session.execute(
            in_scope(query, CommissionEntry.merchant_id, scope)
        )
    ]
    sums.sort(key=lambda row: (row.currency, STATES.index(row.state) if row.state in STATES else 99))
    return Earnings(creator_ref=creator_ref, by_state=sums, currencies=_fold(sums))


# --- a merchant's commissions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommissionFilter:
    """Which entries: of a merchant, a creator, in a state, of a kind, created in [since, until)."""

    merchant_id: int | None = None
    creator_ref: str | None = None
    state: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CommissionRow:
    """A ledger entry with the public references of what it belongs to."""

    id: str
    merchant_id: int
    creator_ref: str
    program_id: int
    link_id: int | None
    link_code: str | None
    attribution_ref: str
    order_id: str
    platform_order_id: str | None
    order_line_id: int
    kind: str
    cause: str
    reverses: str | None
    base_minor: int
    refunded_quantity: int | None
    rate_bps: int
    amount_minor: int
    currency: str
    state: str
    hold_until: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    payout_id: str | None
    created_at: datetime


_Reversed = aliased(CommissionEntry)


def commission_query(filters: CommissionFilter, scope: Scope) -> Select[*tuple[Any, ...]]:
    """Entries matching `filters` with their order, link, reversed entry and payout (unordered)."""
    query = (
        select(
            CommissionEntry,
            Order.public_id,
            Order.platform_order_id,
            AffiliateLink.code,
            _Reversed.public_id,
            AffiliatePayout.platform_payout_id,
        )
        .join(Order, Order.id == CommissionEntry.order_id)
        .outerjoin(AffiliateLink, AffiliateLink.id == CommissionEntry.link_id)
        .outerjoin(_Reversed, _Reversed.id == CommissionEntry.reverses_entry_id)
        .outerjoin(AffiliatePayout, AffiliatePayout.id == CommissionEntry.payout_id)
    )
    return _filtered(query, filters, scope)


def _filtered(query: SelectT, filters: CommissionFilter, scope: Scope) -> SelectT:
    conditions = {
        CommissionEntry.merchant_id: filters.merchant_id,
        CommissionEntry.creator_ref: filters.creator_ref,
        CommissionEntry.state: filters.state,
        CommissionEntry.kind: filters.kind,
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(CommissionEntry.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(CommissionEntry.created_at < filters.until)
    return in_scope(query, CommissionEntry.merchant_id, scope)


def commission_row(row: Any) -> CommissionRow:
    """A row of `commission_query` as a CommissionRow."""
    entry: CommissionEntry = row[0]
    order_id, platform_order_id, link_code, reverses, payout_id = row[1:]
    return CommissionRow(
        id=entry.public_id,
        merchant_id=entry.merchant_id,
        creator_ref=entry.creator_ref,
        program_id=entry.program_id,
        link_id=entry.link_id,
        link_code=link_code,
        attribution_ref=entry.attribution_ref,
        order_id=order_id,
        platform_order_id=platform_order_id,
        order_line_id=entry.order_line_id,
        kind=entry.kind,
        cause=entry.cause,
        reverses=reverses,
        base_minor=entry.base_minor,
        refunded_quantity=entry.refunded_quantity,
        rate_bps=entry.rate_bps,
        amount_minor=entry.amount_minor,
        currency=entry.currency,
        state=entry.state,
        hold_until=entry.hold_until,
        approved_at=entry.approved_at,
        paid_at=entry.paid_at,
        payout_id=payout_id,
        created_at=entry.created_at,
    )


def commissions(
    session: Session, filters: CommissionFilter, scope: Scope, *, before: int | None = None, limit: int = 50
) -> tuple[list[CommissionRow], int | None]:
    """A page of entries, newest first; returns them and the id to continue before (None on the last page)."""
    query = commission_query(filters, scope).order_by(CommissionEntry.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(CommissionEntry.id < before)
    rows = session.execute(query).all()
    page = rows[:limit]
    return [commission_row(row) for row in page], (page[-1][0].id if len(rows) > limit else None)


@dataclass(frozen=True, slots=True)
class CreatorTotal:
    """One creator's entries in one currency under a filter: per state, the unpaid balance, and in all."""

    creator_ref: str
    currency: str
    pending_minor: int
    approved_minor: int
    paid_minor: int
    balance_minor: int
    total_minor: int
    entries: int


def commission_totals(session: Session, filters: CommissionFilter, scope: Scope) -> list[CreatorTotal]:
    """The entries matching `filters` summed per creator and currency (every page's entries, not one page)."""
    query = _filtered(
        select(
            CommissionEntry.creator_ref,
            CommissionEntry.state,
            CommissionEntry.currency,
            func.coalesce(func.sum(CommissionEntry.amount_minor), 0),
            func.count(),
        ).group_by(CommissionEntry.creator_ref, CommissionEntry.state, CommissionEntry.currency),
        filters,
        scope,
    )
    by_creator: dict[str, list[StateTotal]] = {}
    for creator, state, currency, amount, count in session.execute(query):
        by_creator.setdefault(creator, []).append(StateTotal(state, currency, int(amount), int(count)))
    return [
        CreatorTotal(
            creator_ref=creator,
            currency=total.currency,
            pending_minor=total.pending_minor,
            approved_minor=total.approved_minor,
            paid_minor=total.paid_minor,
            balance_minor=total.balance_minor,
            total_minor=total.total_minor,
            entries=total.entries,
        )
        for creator in sorted(by_creator)
        for total in _fold(by_creator[creator])
    ]


# --- one entry with its history ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """A change of an entry's state; `from_state` is None for its creation."""

    from_state: str | None
    to_state: str
    at: datetime
    payout_id: str | None


@dataclass(frozen=True, slots=True)
class OrderRef:
    id: str
    platform_order_id: str | None
    store_order_name: str | None
    status: str
    currency: str


@dataclass(frozen=True, slots=True)
class LineRef:
    id: int
    variant_id: int
    quantity: int
    refunded_quantity: int
    unit_price_minor: int
    discount_minor: int


@dataclass(frozen=True, slots=True)
class LinkRef:
    id: int
    code: str
    product_id: int
    variant_id: int | None


@dataclass(frozen=True, slots=True)
class ProgramRef:
    id: int
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class CommissionDetail:
    """An entry, what it belongs to, the entries reversing it, and its history in the order it was made (each
    change is written after the one before it, so ids give that order even when clocks disagree)."""

    entry: CommissionRow
    order: OrderRef
    line: LineRef
    link: LinkRef | None
    program: ProgramRef
    reversed_by: list[str]
    history: list[TransitionRow] = field(default_factory=list)


def commission_detail(session: Session, public_id: str, scope: Scope) -> CommissionDetail:
    """The entry `public_id` with its refs and history; NotFoundError `commission_not_found` outside the scope."""
    row = session.execute(
        commission_query(CommissionFilter(), scope).where(CommissionEntry.public_id == public_id)
    ).first()
    if row is None:
        raise NotFoundError(f"commission {public_id} not found", code="commission_not_found")
    entry: CommissionEntry = row[0]
    order = session.get_one(Order, entry.order_id)
    line = session.get_one(OrderLine, entry.order_line_id)
    program = session.get_one(AffiliateProgram, entry.program_id)
    link = session.get(AffiliateLink, entry.link_id) if entry.link_id is not None else None
    reversed_by = session.scalars(
        select(CommissionEntry.public_id)
        .where(CommissionEntry.reverses_entry_id == entry.id)
        .order_by(CommissionEntry.id)
    ).all()
    history = [
        TransitionRow(from_state=t.from_state, to_state=t.to_state, at=t.at, payout_id=payout)
        for t, payout in session.execute(
            select(CommissionTransition, AffiliatePayout.platform_payout_id)
            .outerjoin(AffiliatePayout, AffiliatePayout.id == CommissionTransition.payout_id)
            .where(CommissionTransition.entry_id == entry.id)
            .order_by(CommissionTransition.id)  # the order the changes were made, whatever the clocks said
        )
    ]
    return CommissionDetail(
        entry=commission_row(row),
        order=OrderRef(
            order.public_id, order.platform_order_id, order.store_order_name, order.status, order.currency
        ),
        line=LineRef(
            line.id,
            line.variant_id,
            line.quantity,
            line.refunded_quantity,
            line.unit_price_minor,
            line.discount_minor,
        ),
        link=LinkRef(link.id, link.code, link.product_id, link.variant_id) if link is not None else None,
        program=ProgramRef(program.id, program.name, program.kind),
        reversed_by=list(reversed_by),
        history=history,
    )
