"""Commission arithmetic in integer minor units: a line's net paid amount, the commission on it, and the part
of it a refund or cancellation takes back.

A line's net is what the buyer paid for it after discounts, before tax and shipping: its gross less its own
discount and its share of the order's discount (shares allocated by largest remainder, so they sum exactly to
the order's discount). Commission is `rate_bps / 10 000` of a net, rounded half to even to a whole minor unit;
minor units make it exact whatever the currency's exponent (JPY 0, USD 2, KWD 3).

What a line keeps after refunds is a function of the refunds' cumulative figures alone, so the ledger's
sum does not depend on the order in which refunds arrive: `kept_base(net, quantity, refunded_quantity,
refunded_amount)` takes back the refunded units' share of the net (rounded half to even) and then any amount
refunded without units, never below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

MIN_RATE_BPS: Final = 100
MAX_RATE_BPS: Final = 8000
BPS: Final = 10_000


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """`total` (>= 0) split in proportion to `weights` (>= 0), summing exactly to it (largest remainder; ties to
    the earlier part). All-zero weights split evenly."""
    if total < 0:
        raise ValueError("total must not be negative")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    if not weights:
        if total:
            raise ValueError("nothing to allocate to")
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-((total * weights[i]) % whole), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


@dataclass(frozen=True, slots=True)
class LineAmounts:
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0

    @property
    def gross(self) -> int:
        return max(0, self.quantity * self.unit_price_minor - self.discount_minor)


def line_nets(lines: Sequence[LineAmounts], order_discount_minor: int = 0) -> list[int]:
    """Each line's net paid amount: its gross less its share of the order's discount (never below zero)."""
    grosses = [line.gross for line in lines]
    discount = min(max(0, order_discount_minor), sum(grosses))
    shares = allocate(discount, grosses) if lines else []
    return [gross - share for gross, share in zip(grosses, shares, strict=True)]


def commission(base_minor: int, rate_bps: int) -> int:
    """`rate_bps` of `base_minor`, rounded half to even to a whole minor unit (signed like the base)."""
    return _round(Decimal(base_minor) * rate_bps / BPS)


def kept_base(net_minor: int, quantity: int, refunded_quantity: int = 0, refunded_amount: int = 0) -> int:
    """What a line of `quantity` units and net `net_minor` still earns on after `refunded_quantity` units and
    `refunded_amount` minor units (refunded without units) were given back."""
    if quantity <= 0:
        return 0
    left = max(0, quantity - max(0, refunded_quantity))
    by_units = _round(Decimal(net_minor) * left / quantity)
    return max(0, by_units - max(0, refunded_amount))


def share_of_order(amount_minor: int, order_total_minor: int, nets: Sequence[int]) -> list[int]:
    """An amount refunded on the whole order, as the part of each line's net it gives back: the refunded
    fraction of the order's total applied to the lines' nets, allocated by net, never more than they hold."""
    whole = sum(nets)
    if whole <= 0 or amount_minor <= 0:
        return [0] * len(nets)
    if order_total_minor <= 0 or amount_minor >= order_total_minor:
        return list(nets)
    taken = min(whole, _round(Decimal(amount_minor) * whole / order_total_minor))
    return [min(net, part) for net, part in zip(nets, allocate(taken, nets), strict=True)]
