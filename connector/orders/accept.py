"""Accepting an order, shared by the regular and the live checkout: the request, its idempotent replay, and
the one short transaction that writes the order, its lines, its holds and `order.accepted` and queues the push.

Idempotency: the answer of the first request with a key is stored on the order; the same key with the same
body gets it again (status and body), with another body a 422. A refused request writes nothing and may be
sent again with its key. Concurrent requests with one key make one order: the loser of the unique
constraint gives its holds back and answers the winner's answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connector.domain.buyers import buyer_key
from connector.domain.errors import RefusedError
from connector.domain.event_types import ORDER_ACCEPTED
from connector.domain.orders import Attribution, OrderStatus
from connector.infra import outbox, runtime
from connector.infra.models import Order, OrderLine
from connector.orders import push
from connector.orders.queries import order_body
from connector.stock import holds, rebuild

logger = logging.getLogger(__name__)

STORE_TAKES_NO_ORDERS: Final = "store_takes_no_orders"
MAX_ATTEMPTS: Final = 5
REPLAY_WAIT_SECONDS: Final = 5.0


class AgainError(Exception):
    """The counters moved under the attempt (rebuilt, flushed or stale): roll back and try once more."""

    def __init__(self, *, variants: Sequence[int] = (), pins: Sequence[int] = (), force: bool = False):
        super().__init__("again")
        self.variants = list(variants)
        self.pins = list(pins)
        self.force = force


def rebuild_after(rt: runtime.Runtime, again: AgainError) -> None:
    """Rebuild the counters an attempt found missing or stale (forced when the database disagreed)."""
    for variant_id in again.variants:
        rebuild.rebuild_variant(rt, variant_id, only_missing=not again.force)
    for pin_id in again.pins:
        rebuild.rebuild_pin(rt, pin_id, only_missing=not again.force)


def takes_no_orders(merchant_id: int) -> RefusedError:
    return RefusedError(
        422,
        STORE_TAKES_NO_ORDERS,
        f"merchant {merchant_id}'s store does not take orders (its catalog is sold elsewhere)",
        merchant_id=merchant_id,
    )


# --- requests and answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineRequest:
    variant_id: int
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True, slots=True)
class OrderRequest:
    lines: tuple[LineRequest, ...]
    currency: str
    buyer: dict[str, Any] = field(default_factory=dict)
    shipping_address: dict[str, Any] = field(default_factory=dict)
    platform_order_id: str | None = None
    live_session_id: int | None = None
    attribution: Attribution | None = None
    """The creator the sale is credited to, resolved before checkout (`connector.affiliates.attribution`)."""

    @property
    def buyer_ref(self) -> str | None:
        """The buyer's key for per-buyer limits (`connector.domain.buyers.buyer_key` of `buyer.ref`), if any."""
        ref = self.buyer.get("ref")
        key = buyer_key(ref) if isinstance(ref, str) else ""
        return key or None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def request_hash(body: Any) -> str:
    """A digest of a request body, independent of key order and spacing."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- idempotent replay ---------------------------------------------------------------------------------------------


def replay(rt: runtime.Runtime, client_id: int, key: str, digest: str, *, wait: float = 0.0) -> Answer | None:
    """The stored answer of the order made with `key`, waiting up to `wait` seconds for one in flight."""
    deadline = time.monotonic() + wait
    while True:
        with rt.db.session() as session:
            row = session.execute(
                select(Order.request_hash, Order.response_body).where(
                    Order.platform_client_id == client_id, Order.idempotency_key == key
                )
            ).first()
        if row is not None:
            if row.request_hash != digest:
                raise RefusedError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request body",
                )
            return Answer(201, dict(row.response_body or {}), replayed=True)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


# --- persistence -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcceptedLine:
    request: LineRequest
    reservation_id: str | None
    """The hold's id (reserved in Redis first); None for an untracked variant."""
    live_pin_id: int | None = None


def _line_values(lines: Sequence[AcceptedLine]) -> list[dict[str, Any]]:
    return [
        {
            "variant_id": line.request.variant_id,
            "live_pin_id": line.live_pin_id,
            "quantity": line.request.quantity,
            "unit_price_minor": line.request.unit_price_minor,
        }
        for line in lines
    ]


def _insert_orders(
    session: Session,
    orders: Sequence[Order],
    bodies: Sequence[dict[str, Any]],
    lines: Sequence[list[dict[str, Any]]],
) -> list[int]:
    """Insert the orders (one statement, their ids in their order) and all their lines (one more)."""
    conn = session.connection()
    order_ids: list[int] = list(
        conn.execute(
            insert(Order.__table__).returning(Order.id, sort_by_parameter_order=True),  # type: ignore[arg-type]
            [
                {
                    "public_id": order.public_id,
                    "merchant_id": order.merchant_id,
                    "platform_client_id": order.platform_client_id,
                    "platform_order_id": order.platform_order_id,
                    "idempotency_key": order.idempotency_key,
                    "request_hash": order.request_hash,
                    "status": order.status,
                    "currency": order.currency,
                    "subtotal_minor": order.subtotal_minor,
                    "total_minor": order.total_minor,
                    "buyer": order.buyer,
                    "shipping_address": order.shipping_address,
                    "live_session_id": order.live_session_id,
                    "attributed_via": order.attributed_via,
                    "affiliate_link_id": order.affiliate_link_id,
                    "affiliate_program_id": order.affiliate_program_id,
                    "affiliate_creator_ref": order.affiliate_creator_ref,
                    "click_id": order.click_id,
                    "response_body": body,
                    "created_at": order.created_at,
                    "updated_at": order.updated_at,
                }
                for order, body in zip(orders, bodies, strict=True)
            ],
        ).scalars()
    )
    conn.execute(
        insert(OrderLine.__table__),  # type: ignore[arg-type]
        [
            {**values, "order_id": order_id}
            for order_id, line_values in zip(order_ids, lines, strict=True)
            for values in line_values
        ],
    )
    return order_ids


def _accepted(order: Order, line_values: list[dict[str, Any]]) -> outbox.DomainEvent:
    return outbox.DomainEvent(
        ORDER_ACCEPTED,
        order.merchant_id,
        {
            "order_id": order.public_id,
            "platform_order_id": order.platform_order_id,
            "live_session_id": order.live_session_id,
            "total_minor": order.total_minor,
            "currency": order.currency,
            "lines": [
                {
                    "variant_id": values["variant_id"],
                    "quantity": values["quantity"],
                    "unit_price_minor": values["unit_price_minor"],
                }
                for values in line_values
            ],
        },
    )


def _attribution_columns(attribution: Attribution | None) -> dict[str, Any]:
    if attribution is None:
        return {
            "attributed_via": None,
            "affiliate_link_id": None,
            "affiliate_program_id": None,
            "affiliate_creator_ref": None,
            "click_id": None,
        }
    return {
        "attributed_via": attribution.via,
        "affiliate_link_id": attribution.link_id,
        "affiliate_program_id": attribution.program_id,
        "affiliate_creator_ref": attribution.creator_ref,
        "click_id": attribution.click_id,
    }


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An accepted order to write: the request, its key, and what the checkout took for it."""

    client_id: int
    key: str
    digest: str
    request: OrderRequest
    merchant_id: int
    lines: Sequence[AcceptedLine]
    variant_merchants: dict[int, int]
    expires_at: datetime
    events: Sequence[outbox.DomainEvent] = ()
    """Published with its `order.accepted`."""


def _transient(new: NewOrder, now: datetime) -> Order:
    """The order's row values (transient: what `order_body` reads too)."""
    subtotal = sum(line.request.quantity * line.request.unit_price_minor for line in new.lines)
    return Order(
        public_id="ord_" + secrets.token_hex(10),
        merchant_id=new.merchant_id,
        platform_client_id=new.client_id,
        platform_order_id=new.request.platform_order_id,
        idempotency_key=new.key,
        request_hash=new.digest,
        status=OrderStatus.ACCEPTED.value,
        currency=new.request.currency,
        subtotal_minor=subtotal,
        total_minor=subtotal,
        buyer=dict(new.request.buyer),
        shipping_address=dict(new.request.shipping_address),
        live_session_id=new.request.live_session_id,
        store_order_ref=None,
        **_attribution_columns(new.request.attribution),
        store_order_name=None,
        rejection_reason=None,
        created_at=now,
        updated_at=now,
    )


def persist_many(session: Session, news: Sequence[NewOrder]) -> list[dict[str, Any]]:
    """Write the orders, their lines, their holds and their `order.accepted` (with each order's `events`) in
    the caller's transaction, a few statements for all of them (Core inserts: this is the purchase path's
    write, kept short as it holds the write lock), and queue their pushes for after the commit. Returns each
    order's answer, which is stored with it for idempotent replays."""
    now = datetime.now(UTC)
    orders = [_transient(new, now) for new in news]
    lines = [_line_values(new.lines) for new in news]
    bodies = [
        order_body(order, [OrderLine(**values) for values in line_values], new.expires_at)
        for order, line_values, new in zip(orders, lines, news, strict=True)
    ]
    order_ids = _insert_orders(session, orders, bodies, lines)
    holds.add_holds(
        session,
        [
            holds.OrderHold(
                order_id,
                holds.NewHold(
                    line.reservation_id,
                    new.variant_merchants[line.request.variant_id],
                    line.request.variant_id,
                    line.request.quantity,
                    line.live_pin_id,
                ),
                new.request.buyer_ref,
                new.expires_at,
            )
            for order_id, new in zip(order_ids, news, strict=True)
            for line in new.lines
            if line.reservation_id is not None
        ],
        now=now,
    )
    events: list[outbox.DomainEvent] = []
    for order, line_values, new in zip(orders, lines, news, strict=True):
        events += [_accepted(order, line_values), *new.events]
    outbox.publish(session, events)
    for order_id in order_ids:
        push.request_push(session, order_id)
    return bodies


def persist(
    session: Session,
    *,
    client_id: int,
    key: str,
    digest: str,
    request: OrderRequest,
    merchant_id: int,
    lines: Sequence[AcceptedLine],
    variant_merchants: dict[int, int],
    expires_at: datetime,
) -> dict[str, Any]:
    """`persist_many` of one order."""
    (body,) = persist_many(
        session,
        [NewOrder(client_id, key, digest, request, merchant_id, lines, variant_merchants, expires_at)],
    )
    return body
