"""Refunds the platform reports: `POST /v1/orders/{id}/refunds` records a refund made on the platform's side
(units of lines, an amount, or everything) and publishes `order.refunded`, which the commission ledger follows.

A refund is named by the platform's own id: the same id again answers the order as it is and publishes
nothing. Only a confirmed, fulfilled or already (partly) refunded order can be refunded; units beyond what a
line has left are refused. The store is not asked to refund anything: the refund happened on the platform.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.errors import RefusedError
from connector.domain.event_types import ORDER_REFUNDED
from connector.domain.orders import OrderStatus
from connector.infra import outbox, runtime
from connector.infra.models import EventPayload, Order, OrderLine
from connector.orders.queries import order_body, order_lines, owned_order

logger = logging.getLogger(__name__)

REFUNDABLE: Final = frozenset(
    {OrderStatus.CONFIRMED.value, OrderStatus.FULFILLED.value, OrderStatus.REFUNDED.value}
)


@dataclass(frozen=True, slots=True)
class RefundLine:
    variant_id: int
    quantity: int


def _recorded(session: Session, order: Order, refund_id: str) -> bool:
    found = session.scalar(
        select(EventPayload.id)
        .where(
            EventPayload.merchant_id == order.merchant_id,
            EventPayload.type == ORDER_REFUNDED,
            EventPayload.data["order_id"].as_string() == order.public_id,
            EventPayload.data["refund_id"].as_string() == refund_id,
        )
        .limit(1)
    )
    return found is not None


def _take_units(lines: Sequence[OrderLine], wanted: Sequence[RefundLine]) -> list[dict[str, Any]]:
    by_variant = {line.variant_id: line for line in lines}
    taken: list[dict[str, Any]] = []
    for index, item in enumerate(wanted):
        line = by_variant.get(item.variant_id)
        if line is None:
            raise RefusedError(
                422,
                "line_not_found",
                f"lines[{index}]: variant {item.variant_id} is not on the order",
                errors=[{"field": f"lines.{index}.variant_id", "message": "not on the order"}],
            )
        left = line.quantity - line.refunded_quantity
        if item.quantity > left:
            raise RefusedError(
                422,
                "refund_exceeds_line",
                f"lines[{index}]: {item.quantity} units refunded, {left} left to refund",
                errors=[{"field": f"lines.{index}.quantity", "message": f"at most {left}"}],
            )
        taken.append({"variant_id": item.variant_id, "quantity": item.quantity})
    for item in wanted:
        by_variant[item.variant_id].refunded_quantity += item.quantity
    return taken


def record_refund(
    rt: runtime.Runtime,
    client_id: int,
    public_id: str,
    *,
    refund_id: str,
    lines: Sequence[RefundLine] = (),
    amount_minor: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record the platform's refund `refund_id` of the order: (the order's answer, whether it was new)."""
    with rt.db.session() as session:
        order = owned_order(session, client_id, public_id, lock=True)
        rows = order_lines(session, [order.id])[order.id]
        if _recorded(session, order, refund_id):
            return order_body(order, rows), False
        if order.status not in REFUNDABLE:
            raise RefusedError(
                409,
                "order_not_refundable",
                f"order {public_id} is {order.status}; only confirmed or fulfilled orders can be refunded",
                order_status=order.status,
            )
        data: dict[str, Any] = {
            "order_id": order.public_id,
            "platform_order_id": order.platform_order_id,
            "refund_id": refund_id,
            "source": "platform",
        }
        if lines:
            data["lines"] = _take_units(rows, lines)
        elif amount_minor is not None:
            data["amount_minor"] = amount_minor
        else:
            data["full"] = True
            for line in rows:
                line.refunded_quantity = line.quantity
        order.status = OrderStatus.REFUNDED.value
        outbox.publish(session, [outbox.DomainEvent(ORDER_REFUNDED, order.merchant_id, data)])
        session.flush()
        body = order_body(order, rows)
    logger.info("order refund recorded", extra={"order_id": public_id, "refund_id": refund_id})
    return body, True
