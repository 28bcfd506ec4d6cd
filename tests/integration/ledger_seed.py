"""Seed rows of the affiliate tables for the read tests: programs, links, clicks, orders and ledger entries with
their state history, written through the models as the ledger would have written them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.infra import runtime
from connector.infra.models import (
    AffiliateClick,
    AffiliateLink,
    AffiliatePayout,
    AffiliateProgram,
    AffiliateProgramRate,
    CommissionEntry,
    CommissionTransition,
    Order,
    OrderLine,
)
from tests.integration.api_support import add_merchant, add_product

_serial = itertools.count(1)
NOW = datetime.now(UTC).replace(microsecond=0)
"""A moment the seeded times are relative to (never asserted as such)."""


@dataclass(frozen=True)
class Shop:
    """A merchant with a product, an open program and a way to make orders."""

    client_id: int | None
    merchant_id: int
    product_id: int
    variant_id: int
    program_id: int


def add_shop(
    rt: runtime.Runtime, client_id: int | None, *, name: str | None = None, rate_bps: int = 1000
) -> Shop:
    merchant_id = add_merchant(rt, client_id, name=name)
    product_id, (variant_id,) = add_product(rt, merchant_id, title=f"{name or 'shop'} tee", variants=[{}])
    program_id = add_program(rt, merchant_id, rate_bps=rate_bps, rates={product_id: rate_bps + 500})
    return Shop(client_id, merchant_id, product_id, variant_id, program_id)


def add_program(
    rt: runtime.Runtime,
    merchant_id: int,
    *,
    name: str = "Open to all",
    kind: str = "open",
    creator_ref: str | None = None,
    rate_bps: int | None = 1000,
    rates: dict[int, int] | None = None,
) -> int:
    with rt.db.session() as session:
        program = AffiliateProgram(
            merchant_id=merchant_id, kind=kind, name=name, creator_ref=creator_ref, default_rate_bps=rate_bps
        )
        session.add(program)
        session.flush()
        for product_id, rate in (rates or {}).items():
            session.add(AffiliateProgramRate(program_id=program.id, product_id=product_id, rate_bps=rate))
        return program.id


def add_link(
    rt: runtime.Runtime, shop: Shop, creator_ref: str, *, product_id: int | None = None
) -> tuple[int, str]:
    """A link of `creator_ref` to the shop's product (or `product_id`); its id and code."""
    with rt.db.session() as session:
        link = AffiliateLink(
            code=f"c{next(_serial):05d}x",
            merchant_id=shop.merchant_id,
            program_id=shop.program_id,
            creator_ref=creator_ref,
            product_id=product_id or shop.product_id,
            variant_id=shop.variant_id,
            locked_rate_bps=1500,
            locked_until=NOW + timedelta(days=30),
        )
        session.add(link)
        session.flush()
        return link.id, link.code


def add_clicks(
    rt: runtime.Runtime, link_id: int, kind: str = "click", count: int = 1, *, at: datetime = NOW
) -> list[str]:
    """`count` clicks of `kind` on the link, a second apart from `at`; their click ids, oldest first."""
    ids = []
    with rt.db.session() as session:
        for index in range(count):
            click_id = f"clk_{next(_serial)}"
            session.add(
                AffiliateClick(
                    link_id=link_id,
                    click_id=click_id,
                    visitor_hash=f"h{index}",
                    kind=kind,
                    occurred_at=at + timedelta(seconds=index),
                )
            )
            ids.append(click_id)
    return ids


def add_order(
    rt: runtime.Runtime, shop: Shop, *, currency: str = "USD", lines: int = 1
) -> tuple[int, list[int]]:
    """A confirmed order of the shop with `lines` lines; its id and line ids."""
    serial = next(_serial)
    with rt.db.session() as session:
        order = Order(
            public_id=f"ord_{serial}",
            merchant_id=shop.merchant_id,
            platform_client_id=shop.client_id,
            platform_order_id=f"p-{serial}",
            idempotency_key=f"k-{serial}",
            request_hash="0" * 64,
            status="confirmed",
            currency=currency,
        )
        session.add(order)
        session.flush()
        ids = []
        for _ in range(lines):
            line = OrderLine(order_id=order.id, variant_id=shop.variant_id, quantity=2, unit_price_minor=2500)
            session.add(line)
            session.flush()
            ids.append(line.id)
        return order.id, ids


def add_payout(rt: runtime.Runtime, creator_ref: str, currency: str = "USD") -> int:
    with rt.db.session() as session:
        payout = AffiliatePayout(
            platform_payout_id=f"po_{next(_serial)}",
            request_hash="0" * 64,
            creator_ref=creator_ref,
            currency=currency,
            total_minor=0,
            entry_count=0,
        )
        session.add(payout)
        session.flush()
        return payout.id


_STEPS = {"pending": (), "approved": ("approved",), "paid": ("approved", "paid")}


def add_entry(
    rt: runtime.Runtime,
    shop: Shop,
    creator_ref: str,
    amount_minor: int,
    *,
    state: str = "pending",
    currency: str = "USD",
    link_id: int | None = None,
    order: tuple[int, list[int]] | None = None,
    reverses: int | None = None,
    cause: str | None = None,
    created_at: datetime = NOW,
    payout_id: int | None = None,
    skewed: bool = False,
) -> tuple[int, str]:
    """A ledger entry with the transitions of its `state`, written in order: created, then approved and paid a
    minute apart (`skewed`: the payout's clock an hour behind, so its time is before the approval's). An order is
    made for it unless given. Its id and public id."""
    order_id, line_ids = order or add_order(rt, shop, currency=currency)
    kind = "reversal" if amount_minor < 0 else "accrual"
    with rt.db.session() as session:
        entry = CommissionEntry(
            public_id=f"com_{next(_serial)}",
            merchant_id=shop.merchant_id,
            creator_ref=creator_ref,
            program_id=shop.program_id,
            link_id=link_id,
            attribution_ref=f"link:{link_id}" if link_id else "live:1",
            order_id=order_id,
            order_line_id=line_ids[0],
            kind=kind,
            cause=cause or ("order" if kind == "accrual" else f"refund:r{next(_serial)}"),
            reverses_entry_id=reverses,
            base_minor=amount_minor * 10,
            rate_bps=1000,
            amount_minor=amount_minor,
            currency=currency,
            state=state,
            hold_until=created_at + timedelta(days=30),
            approved_at=created_at + timedelta(minutes=1) if state != "pending" else None,
            paid_at=created_at + timedelta(minutes=2) if state == "paid" else None,
            payout_id=payout_id if state == "paid" else None,
            created_at=created_at,
        )
        session.add(entry)
        session.flush()
        steps = [(None, "pending", created_at, None)]
        previous = "pending"
        for minutes, step in enumerate(_STEPS[state], start=1):
            at = created_at + timedelta(minutes=minutes)
            if skewed and step == "paid":
                at -= timedelta(hours=1)
            steps.append((previous, step, at, payout_id if step == "paid" else None))
            previous = step
        for from_state, to_state, at, payout in steps:
            session.add(
                CommissionTransition(
                    entry_id=entry.id, from_state=from_state, to_state=to_state, at=at, payout_id=payout
                )
            )
        return entry.id, entry.public_id
