"""Money: minor units, currency exponents, parsing and exact allocation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.domain.money import Money, parse_money


@pytest.mark.parametrize(
    ("text", "minor", "currency"),
    [
        ("12.99 USD", 1299, "USD"),
        ("1500 JPY", 1500, "JPY"),
        ("1.234 KWD", 1234, "KWD"),
        ("0.5 EUR", 50, "EUR"),
        ("7 usd", 700, "USD"),
    ],
)
def test_parse(text, minor, currency):
    assert parse_money(text) == Money(minor, currency)


@pytest.mark.parametrize(
    "text", ["", "12.99", "abc USD", "12.999 USD", "1.5 JPY", "-1 USD", "12,99 EUR", "1 US"]
)
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse_money(text)


def test_default_currency():
    assert parse_money("3.10", default_currency="GBP") == Money(310, "GBP")


def test_str_uses_the_exponent():
    assert str(Money(1500, "JPY")) == "1500 JPY"
    assert str(Money(5, "USD")) == "0.05 USD"


def test_from_decimal_rounds_half_even():
    assert Money.from_decimal(Decimal("0.125"), "USD").minor == 12
    assert Money.from_decimal(Decimal("0.135"), "USD").minor == 14


@given(st.integers(min_value=0, max_value=10**12), st.lists(st.integers(0, 1000), min_size=1, max_size=20))
def test_allocation_sums_exactly(minor, weights):
    if sum(weights) == 0:
        weights = [*weights, 1]
    parts = Money(minor, "USD").allocate(weights)
    assert sum(p.minor for p in parts) == minor
    assert all(p.minor >= 0 for p in parts)


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["USD", "JPY", "KWD"]))
def test_round_trip_through_text(minor, currency):
    money = Money(minor, currency)
    assert parse_money(str(money)) == money
