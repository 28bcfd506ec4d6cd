"""Customers' personal data held for a merchant: found for a data request, redacted on request.

Personal data lives in orders (`Order.buyer`, `Order.shipping_address`, the store's stored answer
`Order.response_body`), in reservations (`Reservation.buyer_ref`) and in the raw bodies of stored inbound
deliveries. Reservation rows are written by their one owner, `connector.stock.holds`, a layer above this one:
the caller that applies a privacy event (`connector.stock.store_events`) has their buyer forgotten there, in
the same transaction, for the orders `redact_customer` returns and for the whole shop after `redact_shop`. A customer is matched by the store's order refs a request names, or by the buyer's email
(case-insensitive) or phone in `buyer` or `shipping_address` (digits only; one number ending with the other,
so a country code written on one side only still matches). Redaction keeps the order
(amounts, lines and commissions stay true) and replaces every personal value by `REDACTED`, so a
redacted order still shows which fields it held and matches no customer again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from connector.infra.models import InboundEvent, Order

logger = logging.getLogger(__name__)

REDACTED: Final = "[redacted]"
MIN_PHONE_DIGITS: Final = 7
_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class Customer:
    """Who a request is about, as the store names them (any part may be missing)."""

    email: str | None = None
    phone: str | None = None
    order_refs: Collection[str] = ()


@dataclass(slots=True)
class Found:
    """Orders holding a customer's personal data, and which fields they hold."""

    orders: list[str] = field(default_factory=list)
    """Public ids of the orders."""
    fields: set[str] = field(default_factory=set)
    """`column.key` of each personal value held (`buyer.email`, `shipping_address.line1`)."""
    order_ids: list[int] = field(default_factory=list)


def _digits(value: object) -> str:
    return "".join(ch for ch in value if ch.isdigit()) if isinstance(value, str) else ""


def _held(data: Mapping[str, Any] | None) -> list[str]:
    if not isinstance(data, Mapping):
        return []
    return [key for key, value in data.items() if value not in (None, "", REDACTED, [], {})]


def _matches(
    customer: Customer, ref: str | None, buyer: Mapping[str, Any], address: Mapping[str, Any]
) -> bool:
    if ref is not None and ref in customer.order_refs:
        return True
    email = (customer.email or "").strip().casefold()
    if email and isinstance(buyer.get("email"), str) and buyer["email"].strip().casefold() == email:
        return True
    return any(_same_phone(customer.phone, held) for held in (buyer.get("phone"), address.get("phone")))


def _same_phone(wanted: object, held: object) -> bool:
    a, b = _digits(wanted), _digits(held)
    if min(len(a), len(b)) < MIN_PHONE_DIGITS:
        return False
    return a.endswith(b) or b.endswith(a)


def _orders(session: Session, merchant_id: int) -> Iterator[Any]:
    query = (
        select(Order.id, Order.public_id, Order.store_order_ref, Order.buyer, Order.shipping_address)
        .where(Order.merchant_id == merchant_id)
        .order_by(Order.id)
        .execution_options(yield_per=_CHUNK)
    )
    yield from session.execute(query)


def find_customer(session: Session, merchant_id: int, customer: Customer) -> Found:
    """Orders of `merchant_id` that hold personal data of `customer`."""
    found = Found()
    for row in _orders(session, merchant_id):
        buyer = row.buyer if isinstance(row.buyer, Mapping) else {}
        address = row.shipping_address if isinstance(row.shipping_address, Mapping) else {}
        if not _matches(customer, row.store_order_ref, buyer, address):
            continue
        held = [f"buyer.{key}" for key in _held(buyer)] + [
            f"shipping_address.{key}" for key in _held(address)
        ]
        if not held:
            continue
        found.orders.append(row.public_id)
        found.order_ids.append(row.id)
        found.fields.update(held)
    return found


_redact = (
    update(Order)
    .where(Order.id == bindparam("order_id"))
    .values(buyer=bindparam("new_buyer"), shipping_address=bindparam("new_address"), response_body=None)
)


def _redact_orders(session: Session, rows: list[Any]) -> None:
    """Every personal value of the orders `rows` (id, buyer, shipping_address) replaced, in batches."""
    conn = session.connection()
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        conn.execute(
            _redact,
            [
                {
                    "order_id": row.id,
                    "new_buyer": dict.fromkeys(row.buyer or {}, REDACTED),
                    "new_address": dict.fromkeys(row.shipping_address or {}, REDACTED),
                }
                for row in chunk
            ],
        )


def redact_customer(session: Session, merchant_id: int, customer: Customer) -> Found:
    """Replace `customer`'s personal data in the merchant's orders by REDACTED; returns what was redacted (the
    caller has the orders' holds forget the buyer: `connector.stock.holds.forget_buyers`)."""
    found = find_customer(session, merchant_id, customer)
    if found.order_ids:
        wanted = set(found.order_ids)
        rows = [row for row in _orders(session, merchant_id) if row.id in wanted]
        _redact_orders(session, rows)
    return found


def redact_shop(session: Session, merchant_id: int) -> Found:
    """Erase every customer's personal data held for the merchant: orders, and the bodies and headers of its
    stored inbound deliveries already applied (pending ones are still to be applied). The caller has the
    merchant's holds forget their buyers (`connector.stock.holds.forget_merchant_buyers`)."""
    found = Found()
    rows = []
    for row in _orders(session, merchant_id):
        held = [f"buyer.{key}" for key in _held(row.buyer)] + [
            f"shipping_address.{key}" for key in _held(row.shipping_address)
        ]
        if held:
            rows.append(row)
            found.orders.append(row.public_id)
            found.order_ids.append(row.id)
            found.fields.update(held)
    _redact_orders(session, rows)
    session.execute(
        update(InboundEvent)
        .where(
            InboundEvent.merchant_id == merchant_id,
            InboundEvent.status != "pending",
        )
        .values(raw_body=b"", headers={})
        .execution_options(synchronize_session=False)
    )
    return found
