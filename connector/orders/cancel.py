"""Order cancellation: a platform client cancels an order (its holds are given back at once), and the job
`cancel_in_store` cancels it in the store when the store may have it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.orm import Session

from connector.domain.errors import PermanentError, RefusedError, RetryableError
from connector.domain.event_types import ORDER_CANCELLED
from connector.domain.orders import ExternalOrderRef, OrderStatus
from connector.infra import outbox, queue, runtime
from connector.infra.models import Merchant, Order
from connector.infra.queue import ORDERS, jittered_retry
from connector.infra.store_adapters import build_adapter
from connector.orders import push
from connector.orders.queries import order_body, order_lines, owned_order
from connector.stock import counters, holds

logger = logging.getLogger(__name__)

CANCEL_JOB: Final = "connector.orders.cancel.cancel_in_store"
CANCELLABLE: Final = frozenset({OrderStatus.ACCEPTED.value, OrderStatus.CONFIRMED.value})


def _enqueue_cancel(session: Session, order_id: int) -> None:
    def _after_commit(_session: Session) -> None:
        try:
            runtime.current().queues.enqueue(
                ORDERS, CANCEL_JOB, order_id, job_id=f"order-cancel-{order_id}", retry=jittered_retry()
            )
        except Exception:
            logger.exception("store cancellation not queued", extra={"order_id": order_id})

    event.listen(session, "after_commit", _after_commit, once=True)


def cancel_order(rt: runtime.Runtime, client_id: int, public_id: str, reason: str | None) -> dict[str, Any]:
    """Cancel an accepted or confirmed order: its holds are given back at once, and an order the store may
    have (pushed or being pushed) is cancelled there by a job on the `orders` queue. Cancelling a cancelled
    order answers it as it is."""
    with rt.db.session() as session:
        order = owned_order(session, client_id, public_id, lock=True)
        if order.status == OrderStatus.CANCELLED.value:
            return order_body(order, order_lines(session, [order.id])[order.id])
        if order.status not in CANCELLABLE:
            raise RefusedError(
                409,
                "order_not_cancellable",
                f"order {public_id} is {order.status}; only accepted or confirmed orders can be cancelled",
                order_status=order.status,
            )
        in_store = (
            order.status == OrderStatus.CONFIRMED.value
            or order.push_attempts > 0
            or order.push_started_at is not None
        )
        given = holds.release_order(session, order.id)
        order.status = OrderStatus.CANCELLED.value
        order.rejection_reason = f"cancelled: {reason}" if reason else "cancelled"
        outbox.publish(
            session,
            [
                outbox.DomainEvent(
                    ORDER_CANCELLED,
                    order.merchant_id,
                    {
                        "order_id": order.public_id,
                        "platform_order_id": order.platform_order_id,
                        "store_order_id": order.store_order_ref,
                        "reason": reason,
                    },
                )
            ],
        )
        if in_store:
            _enqueue_cancel(session, order.id)
        session.flush()
        body = order_body(order, order_lines(session, [order.id])[order.id])
    counters.release_in_redis(rt.redis, given)
    logger.info("order cancelled", extra={"order_id": public_id, "in_store": in_store})
    return body


def cancel_in_store(order_id: int) -> str | None:
    """RQ job: cancel a cancelled order in its store; returns the store order cancelled (None if never made).

    A push attempt still in flight is waited out (its lease); then the store order is the one the push
    recorded, or is looked up by the push's deterministic key, so an order whose answer was lost is found."""
    rt = runtime.current()
    with rt.db.session() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise PermanentError(f"no order {order_id}", code="order_not_found")
        if order.status != OrderStatus.CANCELLED.value:
            return None
        merchant = session.get(Merchant, order.merchant_id)
        if merchant is None:
            raise PermanentError("merchant is gone", code="merchant_not_found")
        started = order.push_started_at
        ref = (
            ExternalOrderRef(order.store_order_ref, order.store_order_name) if order.store_order_ref else None
        )
        public_id = order.public_id
    lease = queue.lease_seconds(rt.settings)
    if started is not None and started > datetime.now(UTC) - timedelta(seconds=lease):
        raise RetryableError("the order's push is in flight", code="push_in_flight", retry_after=lease)
    adapter = build_adapter(merchant, rt.secrets, rt.settings)
    if ref is None:
        ref = adapter.find_order(push.push_key(public_id))
    if ref is None:
        logger.info("order never reached the store; nothing to cancel", extra={"order_id": order_id})
        return None
    adapter.cancel_order(ref)
    logger.info("order cancelled in the store", extra={"order_id": order_id, "store_order": ref.external_id})
    return ref.external_id
