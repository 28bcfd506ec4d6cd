"""Commission arithmetic: exact in minor units for every currency exponent, half-even rounding, allocations
that neither lose nor invent a minor unit, and what a line keeps after refunds in any order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.affiliates.amounts import (
    LineAmounts,
    allocate,
    commission,
    kept_base,
    line_nets,
    share_of_order,
)
from connector.domain.money import Money


def test_commission_rounds_half_to_even_in_minor_units():
    assert commission(1250, 1000) == 125  # 10% of 12.50 USD = 1.25
    assert commission(25, 1000) == 2  # 2.5 -> 2
    assert commission(35, 1000) == 4  # 3.5 -> 4
    assert commission(-35, 1000) == -4
    assert commission(0, 8000) == 0


def test_commission_is_exact_for_zero_and_three_decimal_currencies():
    yen = Money.from_decimal(Money(1999, "JPY").to_decimal(), "JPY")
    assert commission(yen.minor, 1500) == 300  # 15% of 1999 JPY = 299.85 -> 300 JPY
    dinar = Money(12345, "KWD")  # 12.345 KWD
    assert commission(dinar.minor, 1250) == 1543  # 1543.125 fils -> 1543 fils (1.543 KWD)
    assert str(Money(commission(dinar.minor, 1250), "KWD")) == "1.543 KWD"


def test_the_order_discount_is_shared_by_the_lines_without_losing_a_minor_unit():
    lines = [LineAmounts(1, 333), LineAmounts(1, 333), LineAmounts(1, 334)]
    nets = line_nets(lines, order_discount_minor=100)
    assert sum(nets) == 900
    assert nets == [300, 300, 300]
    assert line_nets([LineAmounts(2, 500, discount_minor=100)]) == [900]
    assert line_nets([LineAmounts(1, 50)], order_discount_minor=80) == [0]


@given(
    st.integers(min_value=0, max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20),
)
def test_allocation_sums_to_the_total(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert all(part >= 0 for part in parts)
    if sum(weights):
        assert all(part == 0 for part, weight in zip(parts, weights, strict=True) if weight == 0)


@given(
    net=st.integers(min_value=0, max_value=10**9),
    quantity=st.integers(min_value=1, max_value=50),
    refunds=st.lists(st.integers(min_value=0, max_value=50), max_size=6),
)
def test_what_a_line_keeps_depends_on_the_refunds_not_their_order(net, quantity, refunds):
    total = sum(refunds)
    forwards = kept_base(net, quantity, total)
    assert forwards == kept_base(net, quantity, sum(reversed(refunds)))
    assert 0 <= forwards <= net
    assert kept_base(net, quantity, 0) == net
    assert kept_base(net, quantity, quantity) == 0


def test_an_order_level_refund_takes_its_fraction_of_the_nets():
    assert share_of_order(500, 1000, [600, 200]) == [300, 100]
    assert share_of_order(1000, 1000, [600, 200]) == [600, 200]
    assert share_of_order(0, 1000, [600, 200]) == [0, 0]
    assert sum(share_of_order(333, 1000, [500, 501])) == 333  # 333.333 of the 1001 of nets
    assert share_of_order(1, 2, [1]) == [0]  # half of 1: 0.5 rounds to 0
    assert share_of_order(1, 2, [3]) == [2]  # half of 3: 1.5 rounds to 2
