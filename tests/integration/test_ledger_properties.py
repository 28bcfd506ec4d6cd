"""The ledger's sums, for any sequence of confirmed orders, partial and full refunds (by units or by amount),
cancellations, replayed events in any order, approvals and payouts: every line's entries sum to the commission
on what it still keeps, to the minor unit, so each creator's balance is exact; paid entries never change; the
payouts' totals are exactly what was paid (hypothesis, against the real database, through the ledger's
outbox subscriber)."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from connector.affiliates import amounts, approval, ledger, payouts
from connector.domain.errors import RefusedError
from connector.infra import runtime
from connector.infra.models import (
    AffiliateLink,
    AffiliatePayout,
    AffiliateProgram,
    AffiliateProgramRate,
    CommissionEntry,
    Order,
    OrderLine,
    Product,
    Variant,
)
from connector.merchants.records import create_merchant
from tests.helpers import make_client

Runtime = runtime.Runtime
RATES = (1000, 2500)  # the open program's default rate, and the second product's own rate
FAR = datetime.now(UTC) + timedelta(days=3650)
_serial = itertools.count()


@dataclass
class World:
    rt: Runtime
    client_id: int
    merchant_id: int
    variants: list[int]
    link_id: int


def _product(session: Any, merchant_id: int, name: str) -> tuple[int, int]:
    product = Product(merchant_id=merchant_id, external_id=f"{name}-p", title=name, content_hash="")
    session.add(product)
    session.flush()
    variant = Variant(
        merchant_id=merchant_id,
        product_id=product.id,
        external_id=f"{name}-v",
        title=name,
        price_minor=100,
        currency="JPY",
        inventory_tracked=False,
        content_hash="",
    )
    session.add(variant)
    session.flush()
    return product.id, variant.id


@pytest.fixture
def world(rt: Runtime) -> World:
    """A merchant with two products, an open program (the second product at its own rate) and one link."""
    client_id, _auth = make_client(rt, "platform")
    with rt.db.session() as session:
        merchant = create_merchant(
            session, rt.secrets, kind="feed", name="m", config={"url": "x.csv"}, platform_client_id=client_id
        )
        (p1, v1), (p2, v2) = _product(session, merchant.id, "mug"), _product(session, merchant.id, "cup")
        program = AffiliateProgram(
            merchant_id=merchant.id, kind="open", name="all", default_rate_bps=RATES[0]
        )
        session.add(program)
        session.flush()
        session.add(AffiliateProgramRate(program_id=program.id, product_id=p2, rate_bps=RATES[1]))
        link = AffiliateLink(
            code=secrets.token_urlsafe(8),
            merchant_id=merchant.id,
            program_id=program.id,
            creator_ref="seed",
            product_id=p1,
            locked_rate_bps=RATES[0],
            locked_until=datetime.now(UTC),
        )
        session.add(link)
        session.flush()
        return World(rt, client_id, merchant.id, [v1, v2], link.id)


line_st = st.tuples(st.integers(1, 5), st.integers(1, 100_000))
order_st = st.tuples(
    st.sampled_from(["a", "b"]),  # the creator
    st.lists(line_st, min_size=1, max_size=2),
    st.integers(0, 5_000),  # the order's discount
)
op_st = st.one_of(
    st.tuples(st.just("units"), st.integers(0, 9), st.integers(0, 1), st.integers(1, 5), st.integers(0, 3)),
    st.tuples(st.just("amount"), st.integers(0, 9), st.integers(1, 500_000), st.integers(0, 3)),
    st.tuples(st.just("full"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("replay"), st.integers(0, 30)),
    st.tuples(st.just("approve")),
    st.tuples(st.just("payout"), st.sampled_from(["a", "b"])),
)


@dataclass
class Model:
    """What each line keeps, from the distinct refunds applied (in any order)."""

    refunds: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)  # (order, cause) -> refund

    def kept(self, order: Order, lines: list[OrderLine], nets: list[int]) -> list[int]:
        units: dict[int, int] = defaultdict(int)
        money: dict[int, int] = defaultdict(int)
        everything = False
        for (order_id, _cause), refund in self.refunds.items():
            if order_id != order.id:
                continue
            if refund["kind"] in ("full", "cancel"):
                everything = True
            elif refund["kind"] == "units":
                units[refund["line"]] += refund["quantity"]
            else:
                for line, share in zip(
                    lines, amounts.share_of_order(refund["amount"], order.total_minor, nets), strict=True
                ):
                    money[line.id] += share
        if everything:
            return [0] * len(lines)
        return [
            amounts.kept_base(net, line.quantity, units[line.id], money[line.id])
            for line, net in zip(lines, nets, strict=True)
        ]


def _place(world: World, creator: str, lines: list[tuple[int, int]], discount: int) -> int:
    with world.rt.db.session() as session:
        subtotal = sum(q * p for q, p in lines)
        order = Order(
            public_id=f"ord_p{next(_serial)}",
            merchant_id=world.merchant_id,
            platform_client_id=world.client_id,
            idempotency_key=secrets.token_hex(8),
            request_hash="0" * 64,
            status="confirmed",
            currency="JPY",
            subtotal_minor=subtotal,
            discount_minor=min(discount, subtotal),
            total_minor=subtotal - min(discount, subtotal),
            attributed_via="code",
            affiliate_link_id=world.link_id,
            affiliate_creator_ref=creator,
        )
        session.add(order)
        session.flush()
        for variant, (quantity, price) in zip(world.variants, lines, strict=False):
            session.add(
                OrderLine(order_id=order.id, variant_id=variant, quantity=quantity, unit_price_minor=price)
            )
        session.flush()
        ledger.on_events(session, [{"type": "order.confirmed", "data": {"order_id": order.public_id}}])
        return order.id


def _event(world: World, order_id: int, op: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The order event an operation publishes, and the refund it records in the model (None: a replay)."""
    with world.rt.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        lines = session.scalars(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id)
        ).all()
        public = order.public_id
    kind = op[0]
    if kind == "cancel":
        return {"type": "order.cancelled", "data": {"order_id": public}}, {
            "kind": "cancel",
            "cause": "cancel",
        }
    # One refund id names one refund: the same operation drawn twice is the same refund delivered twice.
    refund_id = "r" + hashlib.sha256(repr((order_id, op)).encode()).hexdigest()[:12]
    data: dict[str, Any] = {"order_id": public, "refund_id": refund_id}
    refund: dict[str, Any] = {"kind": kind, "cause": f"refund:{refund_id}"}
    if kind == "units":
        line = lines[op[2] % len(lines)]
        data["lines"] = [{"variant_id": line.variant_id, "quantity": op[3]}]
        refund |= {"line": line.id, "quantity": op[3]}
    elif kind == "amount":
        data["amount_minor"] = op[2]
        refund["amount"] = op[2]
    return {"type": "order.refunded", "data": data}, refund


def _publish(world: World, row: dict[str, Any]) -> None:
    with world.rt.db.session() as session:
        status = "cancelled" if row["type"] == "order.cancelled" else "refunded"
        session.execute(update(Order).where(Order.public_id == row["data"]["order_id"]).values(status=status))
        ledger.on_events(session, [row])


def _paid(world: World) -> dict[int, tuple[int, str, int | None]]:
    with world.rt.db.session() as session:
        return {
            e.id: (e.amount_minor, e.state, e.payout_id)
            for e in session.scalars(select(CommissionEntry).where(CommissionEntry.state == "paid"))
        }


def _check(world: World, orders: list[int], model: Model, paid: dict[int, Any]) -> None:
    expected: dict[str, int] = defaultdict(int)
    with world.rt.db.session() as session:
        for order_id in orders:
            order = session.get(Order, order_id)
            assert order is not None
            rows = (
                session.execute(
                    select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id)
                )
                .scalars()
                .all()
            )
            nets = amounts.line_nets(
                [amounts.LineAmounts(r.quantity, r.unit_price_minor) for r in rows], order.discount_minor
            )
            for line, rate, kept in zip(rows, RATES, model.kept(order, list(rows), nets), strict=False):
                want = amounts.commission(kept, rate)
                got = session.scalar(
                    select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0)).where(
                        CommissionEntry.order_line_id == line.id
                    )
                )
                assert got == want, (order_id, line.id, kept)
                expected[order.affiliate_creator_ref or ""] += want
        for creator, want in expected.items():
            got = session.scalar(
                select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0)).where(
                    CommissionEntry.order_id.in_(orders), CommissionEntry.creator_ref == creator
                )
            )
            assert got == want
        payout_total = session.scalar(select(func.coalesce(func.sum(AffiliatePayout.total_minor), 0)))
        paid_total = session.scalar(
            select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0)).where(
                CommissionEntry.state == "paid"
            )
        )
        assert payout_total == paid_total
    now = _paid(world)
    assert {k: now[k] for k in paid} == paid  # paid entries never change


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(order_st, min_size=1, max_size=3), st.lists(op_st, max_size=12))
def test_every_balance_is_the_commission_on_what_is_kept(world: World, orders_spec, ops):
    orders = [_place(world, creator, lines, discount) for creator, lines, discount in orders_spec]
    model = Model()
    published: list[dict[str, Any]] = []
    paid: dict[int, Any] = {}
    for op in ops:
        if op[0] == "approve":
            approval.approve_due(world.rt, FAR)
        elif op[0] == "payout":
            try:
                payouts.record_payout(
                    world.rt,
                    world.client_id,
                    payouts.PayoutRequest(f"po-{next(_serial)}", op[1], "JPY", approved_up_to=FAR),
                )
            except RefusedError as exc:
                assert exc.code == "nothing_to_pay"
            paid = _paid(world)
        elif op[0] == "replay":
            if published:
                _publish(world, published[op[1] % len(published)])
        else:
            order_id = orders[op[1] % len(orders)]
            row, refund = _event(world, order_id, op)
            assert refund is not None
            model.refunds.setdefault((order_id, refund["cause"]), refund)
            published.append(row)
            _publish(world, row)
    _check(world, orders, model, paid)
