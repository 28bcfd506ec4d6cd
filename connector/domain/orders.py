"""Order domain types passed to adapters when a platform order is pushed into a store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


@dataclass(frozen=True, slots=True)
class Order:
    """A platform order as the store adapter needs it; `id` is Storelink's own order id."""

    id: str
    currency: str
    lines: tuple[OrderLine, ...]
    buyer_email: str | None = None
    shipping_address: Address | None = None


@dataclass(frozen=True, slots=True)
class ExternalOrderRef:
    """Where an order landed in the store."""

    external_id: str
    name: str | None = None
