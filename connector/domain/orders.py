"""Order domain types passed to adapters when a platform order is pushed into a store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from connector.domain.money import Money


class OrderStatus(StrEnum):
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FULFILLED = "fulfilled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    line1: str
    city: str
    country_code: str
    postal_code: str = ""
    line2: str = ""
    province_code: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class OrderLine:
    variant_external_id: str
    quantity: int
    unit_price: Money
    discount: Money | None = None
    tax: Money | None = None


LIVE: Final = "live"


@dataclass(frozen=True, slots=True)
class Attribution:
    """The creator a sale is credited to, and how: through a link's click (`click`) or code (`code`), or
    the creator's live session (`live`). Stored on the order; the store order carries it where it can."""

    via: str
    creator_ref: str
    program_id: int | None = None
    """The program whose rate applied when the order was placed (a live sale's is found when it accrues)."""
    link_id: int | None = None
    link_code: str | None = None
    click_id: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """A platform order as the store adapter needs it; `id` is Storelink's own order id."""

    id: str
    currency: str
    lines: tuple[OrderLine, ...]
    buyer_email: str | None = None
    shipping_address: Address | None = None
    attribution: Attribution | None = None
    """Who sold it, for the merchant's own books (a tag, a note attribute) where the store has room."""


@dataclass(frozen=True, slots=True)
class ExternalOrderRef:
    """Where an order landed in the store."""

    external_id: str
    name: str | None = None
