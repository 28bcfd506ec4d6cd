"""Order queries: a client's orders as the Platform API shows them (one order, or a filtered page).

`order_body` is the one representation of an order, stored as the idempotent answer at checkout
(`connector.orders.checkout`) and answered by reads and cancellation alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.errors import NotFoundError
from connector.domain.timestamps import iso
from connector.infra import runtime
from connector.infra.models import Order, OrderLine, Reservation
from connector.stock import holds

logger = logging.getLogger(__name__)


def order_body(
    order: Order, lines: Sequence[OrderLine], hold_expires_at: datetime | None = None
) -> dict[str, Any]:
    """The API representation of an order."""
    return {
        "id": order.public_id,
        "status": order.status,
        "merchant_id": order.merchant_id,
        "platform_order_id": order.platform_order_id,
        "live_session_id": order.live_session_id,
        "currency": order.currency,
        "lines": [
            {
                "variant_id": line.variant_id,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "live_pin_id": line.live_pin_id,
            }
            for line in lines
        ],
        "subtotal_minor": order.subtotal_minor,
        "total_minor": order.total_minor,
        "buyer": dict(order.buyer or {}),
        "shipping_address": dict(order.shipping_address or {}),
        "attribution": (
            {"creator_ref": order.affiliate_creator_ref, "via": order.attributed_via}
            if order.affiliate_creator_ref
            else None
        ),
        "store_order_id": order.store_order_ref,
        "store_order_name": order.store_order_name,
        "reason": order.rejection_reason,
        "hold_expires_at": iso(hold_expires_at),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
    }


def owned_order(session: Session, client_id: int, public_id: str, *, lock: bool = False) -> Order:
    """The client's order `public_id` (404 for another client's), optionally locked for update."""
    query = select(Order).where(Order.public_id == public_id, Order.platform_client_id == client_id)
    if lock:
        query = query.with_for_update()
    order = session.scalar(query)
    if order is None:
        raise NotFoundError(f"order {public_id} not found", code="order_not_found")
    return order


def order_lines(session: Session, order_ids: Sequence[int]) -> dict[int, list[OrderLine]]:
    """The lines of each order, in order."""
    out: dict[int, list[OrderLine]] = {oid: [] for oid in order_ids}
    if order_ids:
        for line in session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
        ):
            out[line.order_id].append(line)
    return out


def hold_expiry(session: Session, order_ids: Sequence[int]) -> dict[int, datetime]:
    """When each order's first active hold expires (orders without active holds are absent)."""
    if not order_ids:
        return {}
    rows = session.execute(
        select(Reservation.order_id, Reservation.expires_at).where(
            Reservation.order_id.in_(order_ids), Reservation.state == holds.ACTIVE
        )
    )
    out: dict[int, datetime] = {}
    for order_id, expires in rows:
        if order_id is not None and expires is not None:
            out[order_id] = min(expires, out.get(order_id, expires))
    return out


def get_order(rt: runtime.Runtime, client_id: int, public_id: str) -> dict[str, Any]:
    with rt.db.session() as session:
        order = owned_order(session, client_id, public_id)
        return order_body(
            order, order_lines(session, [order.id])[order.id], hold_expiry(session, [order.id]).get(order.id)
        )


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: str | None = None
    merchant_id: int | None = None
    live_session_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def list_orders(
    rt: runtime.Runtime, client_id: int, filters: OrderFilter, *, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """The client's orders, newest first; returns the page and the id to continue before (None at the end)."""
    query = (
        select(Order).where(Order.platform_client_id == client_id).order_by(Order.id.desc()).limit(limit + 1)
    )
    if filters.status is not None:
        query = query.where(Order.status == filters.status)
    if filters.merchant_id is not None:
        query = query.where(Order.merchant_id == filters.merchant_id)
    if filters.live_session_id is not None:
        query = query.where(Order.live_session_id == filters.live_session_id)
    if filters.created_from is not None:
        query = query.where(Order.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(Order.created_at < filters.created_to)
    if before is not None:
        query = query.where(Order.id < before)
    with rt.db.session() as session:
        orders = list(session.scalars(query))
        page = orders[:limit]
        ids = [o.id for o in page]
        lines = order_lines(session, ids)
        expiry = hold_expiry(session, ids)
        data = [order_body(o, lines[o.id], expiry.get(o.id)) for o in page]
    return data, (page[-1].id if len(orders) > limit else None)
