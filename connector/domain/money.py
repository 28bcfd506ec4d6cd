"""Money as integer minor units with ISO 4217 exponents; parsing, formatting and exact allocation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 currencies whose minor unit is not 2 digits.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"-?\d+(\.\d+)?")


def exponent(currency: str) -> int:
    """Digits after the decimal point for `currency` (JPY 0, USD 2, KWD 3)."""
    return _EXPONENTS.get(currency, 2)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one currency. Never a float."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        currency = self.currency
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
            raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {self.currency!r}")

    @classmethod
    def from_decimal(cls, amount: Decimal, currency: str) -> Money:
        scale = Decimal(1).scaleb(-exponent(currency))
        quantized = amount.quantize(scale, rounding=ROUND_HALF_EVEN)
        return cls(int(quantized.scaleb(exponent(currency))), currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def __str__(self) -> str:
        return f"{self.to_decimal():.{exponent(self.currency)}f} {self.currency}"

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split into parts proportional to `weights` that sum exactly to this amount (largest remainder)."""
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise ValueError("weights must be non-negative and not all zero")
        total = sum(weights)
        shares = [self.minor * w // total for w in weights]
        remainders = sorted(
            range(len(weights)), key=lambda i: (self.minor * weights[i]) % total, reverse=True
        )
        for i in remainders[: self.minor - sum(shares)]:
            shares[i] += 1
        return [Money(s, self.currency) for s in shares]


def parse_money(text: str, default_currency: str | None = None) -> Money:
    """Parse "12.99 USD" (the product-feed format) or "12.99" with a default currency.

    Raises ValueError with a readable reason on anything else, including more decimals than the currency has.
    """
    parts = text.strip().split()
    if len(parts) == 2:
        amount_text, currency = parts[0], parts[1].upper()
    elif len(parts) == 1 and default_currency:
        amount_text, currency = parts[0], default_currency
    else:
        raise ValueError(f"price {text!r} is not '<amount> <ISO currency>'")
    if not _AMOUNT.fullmatch(amount_text):
        raise ValueError(f"price amount {amount_text!r} is not a decimal number")
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"price currency {currency!r} is not a 3-letter ISO 4217 code")
    if amount_text.startswith("-"):
        raise ValueError(f"price {text!r} is negative")
    whole, _, fraction = amount_text.partition(".")
    places = exponent(currency)
    if len(fraction) > places:
        raise ValueError(f"price {text!r} has more decimals than {currency} allows ({places})")
    # Exact integer arithmetic: the text already has no more digits than the currency's minor unit.
    return Money(int(whole) * 10**places + (int(fraction.ljust(places, "0")) if places else 0), currency)
