"""Checkout: platform orders accepted once per idempotency key, with stock held, then pushed to the store.

`create_order` validates the lines (the variant exists, belongs to a merchant of the calling platform client
whose store takes orders, as its adapter's declared capabilities say, is sellable, is sold at the stated
price), holds the stock (`connector.stock.reservations`), persists the order
`accepted` with its lines, holds and `order.accepted` event in one transaction, and queues the push
(`connector.orders.push`), which confirms or rejects the order and settles the holds.

Two paths share the persistence:

- a regular order takes the variants' share lock, reserves their counters, and writes;
- a live order (`live_session_id`) buys from the session's pins with one Lua call that checks the pin is on
  sale, the price, the buyer's limit and the allocation together, so a refusal (sold out, over the limit)
  touches no database; an accepted purchase then writes in one short transaction.

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
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.buyers import buyer_key
from connector.domain.errors import NotFoundError, PermanentError, RetryableError
from connector.domain.event_types import (
    LIVE_PIN_UPDATED,
    LIVE_SOLD_OUT,
    LIVE_STOCK_LOW,
    ORDER_ACCEPTED,
    ORDER_CANCELLED,
)
from connector.domain.orders import ExternalOrderRef, OrderStatus
from connector.domain.timestamps import iso
from connector.infra import outbox, queue, runtime
from connector.infra.models import LivePin, Merchant, Order, OrderLine, Reservation
from connector.infra.queue import ORDERS, jittered_retry
from connector.infra.store_adapters import build_adapter
from connector.orders import push
from connector.stock import reservations
from connector.stock.reservations import Hold, PinLine, VariantLine

logger = logging.getLogger(__name__)

CANCEL_JOB: Final = "connector.orders.checkout.cancel_in_store"
STORE_TAKES_NO_ORDERS: Final = "store_takes_no_orders"
MAX_ATTEMPTS: Final = 5
REPLAY_WAIT_SECONDS: Final = 5.0
CANCELLABLE: Final = frozenset({OrderStatus.ACCEPTED.value, OrderStatus.CONFIRMED.value})


class RefusedError(PermanentError):
    """A request refused with an HTTP status and extra members for its problem document."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message, code=code, details=extra)
        self.status = status
        self.extra = extra


class _AgainError(Exception):
    """The counters moved under the attempt (rebuilt, flushed or stale): roll back and try once more."""

    def __init__(self, *, variants: Sequence[int] = (), pins: Sequence[int] = (), force: bool = False):
        super().__init__("again")
        self.variants = list(variants)
        self.pins = list(pins)
        self.force = force


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
        "store_order_id": order.store_order_ref,
        "store_order_name": order.store_order_name,
        "reason": order.rejection_reason,
        "hold_expires_at": iso(hold_expires_at),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
    }


# --- idempotent replay ---------------------------------------------------------------------------------------------


def _replay(
    rt: runtime.Runtime, client_id: int, key: str, digest: str, *, wait: float = 0.0
) -> Answer | None:
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
class _Line:
    request: LineRequest
    reservation_id: str | None
    live_pin_id: int | None = None


def _persist(
    session: Session,
    *,
    client_id: int,
    key: str,
    digest: str,
    request: OrderRequest,
    merchant_id: int,
    lines: Sequence[_Line],
    variant_merchants: dict[int, int],
    expires_at: datetime,
) -> dict[str, Any]:
    """Write the order, its lines, its holds and `order.accepted` in the caller's transaction (Core inserts:
    this is the purchase path's write, kept short as it holds the write lock), and queue the push for after
    the commit. Returns the order's answer, which is stored with it for idempotent replays."""
    now = datetime.now(UTC)
    subtotal = sum(line.request.quantity * line.request.unit_price_minor for line in lines)
    order = Order(  # transient: the values of the row, and what `order_body` reads
        public_id="ord_" + secrets.token_hex(10),
        merchant_id=merchant_id,
        platform_client_id=client_id,
        platform_order_id=request.platform_order_id,
        idempotency_key=key,
        request_hash=digest,
        status=OrderStatus.ACCEPTED.value,
        currency=request.currency,
        subtotal_minor=subtotal,
        total_minor=subtotal,
        buyer=dict(request.buyer),
        shipping_address=dict(request.shipping_address),
        live_session_id=request.live_session_id,
        store_order_ref=None,
        store_order_name=None,
        rejection_reason=None,
        created_at=now,
        updated_at=now,
    )
    line_values = [
        {
            "variant_id": line.request.variant_id,
            "live_pin_id": line.live_pin_id,
            "quantity": line.request.quantity,
            "unit_price_minor": line.request.unit_price_minor,
        }
        for line in lines
    ]
    body = order_body(order, [OrderLine(**values) for values in line_values], expires_at)
    conn = session.connection()
    order_id: int = conn.execute(
        insert(Order.__table__)  # type: ignore[arg-type]
        .values(
            public_id=order.public_id,
            merchant_id=merchant_id,
            platform_client_id=client_id,
            platform_order_id=order.platform_order_id,
            idempotency_key=key,
            request_hash=digest,
            status=order.status,
            currency=order.currency,
            subtotal_minor=subtotal,
            total_minor=subtotal,
            buyer=order.buyer,
            shipping_address=order.shipping_address,
            live_session_id=order.live_session_id,
            response_body=body,
            created_at=now,
            updated_at=now,
        )
        .returning(Order.id)
    ).scalar_one()
    conn.execute(
        insert(OrderLine.__table__),  # type: ignore[arg-type]
        [{**values, "order_id": order_id} for values in line_values],
    )
    holds = [
        {
            "id": line.reservation_id,
            "merchant_id": variant_merchants[line.request.variant_id],
            "variant_id": line.request.variant_id,
            "order_id": order_id,
            "live_pin_id": line.live_pin_id,
            "buyer_ref": request.buyer_ref,
            "quantity": line.request.quantity,
            "state": reservations.ACTIVE,
            "expires_at": expires_at,
            "settled_at": None,
            "created_at": now,
            "updated_at": now,
        }
        for line in lines
        if line.reservation_id is not None
    ]
    if holds:
        conn.execute(insert(Reservation.__table__), holds)  # type: ignore[arg-type]
    outbox.publish(
        session,
        [
            outbox.DomainEvent(
                ORDER_ACCEPTED,
                merchant_id,
                {
                    "order_id": order.public_id,
                    "platform_order_id": order.platform_order_id,
                    "live_session_id": order.live_session_id,
                    "total_minor": subtotal,
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
        ],
    )
    push.request_push(session, order_id)
    return body


# --- regular orders ----------------------------------------------------------------------------------------------


def _takes_no_orders(merchant_id: int) -> RefusedError:
    return RefusedError(
        422,
        STORE_TAKES_NO_ORDERS,
        f"merchant {merchant_id}'s store does not take orders (its catalog is sold elsewhere)",
        merchant_id=merchant_id,
    )


def _check_lines(rows: dict[int, reservations.StockRow], request: OrderRequest, client_id: int) -> int:
    """Refuse lines this client may not buy; returns the order's merchant."""
    merchants: set[int] = set()
    mismatched: list[dict[str, Any]] = []
    for index, line in enumerate(request.lines):
        row = rows.get(line.variant_id)
        if row is None or row.platform_client_id != client_id:
            raise RefusedError(
                422,
                "variant_not_found",
                f"lines[{index}]: variant {line.variant_id} does not exist",
                errors=[{"field": f"lines.{index}.variant_id", "message": "no such variant"}],
            )
        if row.merchant_status != "installed" or row.status != "active":
            raise RefusedError(
                409,
                "variant_not_sellable",
                f"lines[{index}]: variant {line.variant_id} is not for sale",
                variant_id=line.variant_id,
            )
        if not row.takes_orders:
            raise _takes_no_orders(row.merchant_id)
        if row.currency != request.currency:
            raise RefusedError(
                422,
                "currency_mismatch",
                f"lines[{index}]: variant {line.variant_id} is sold in {row.currency}, not {request.currency}",
                errors=[{"field": "currency", "message": f"must be {row.currency}"}],
            )
        if row.price_minor != line.unit_price_minor:
            mismatched.append(
                {
                    "line": index,
                    "variant_id": line.variant_id,
                    "unit_price_minor": line.unit_price_minor,
                    "current_price_minor": row.price_minor,
                    "currency": row.currency,
                }
            )
        merchants.add(row.merchant_id)
    if mismatched:
        raise RefusedError(
            409, "price_changed", "the price of a line is not the current price", lines=mismatched
        )
    if len(merchants) != 1:
        raise RefusedError(
            422,
            "mixed_merchants",
            "every line of an order must be sold by the same merchant",
            errors=[{"field": "lines", "message": "variants of several merchants"}],
        )
    return merchants.pop()


def _rebuild(rt: runtime.Runtime, again: _AgainError) -> None:
    for variant_id in again.variants:
        reservations.rebuild_variant(rt, variant_id, only_missing=not again.force)
    for pin_id in again.pins:
        reservations.rebuild_pin(rt, pin_id, only_missing=not again.force)


def _create_regular(
    rt: runtime.Runtime, client_id: int, key: str, digest: str, request: OrderRequest
) -> Answer:
    for _attempt in range(MAX_ATTEMPTS):
        expires_at = datetime.now(UTC) + reservations.DEFAULT_HOLD
        taken: list[Hold] = []
        try:
            with rt.db.session() as session:
                rows = reservations.lock_variants(session, [line.variant_id for line in request.lines])
                merchant_id = _check_lines(rows, request, client_id)
                lines = [
                    _Line(line, reservations.new_reservation_id() if rows[line.variant_id].tracked else None)
                    for line in request.lines
                ]
                counted = [
                    VariantLine(
                        line.request.variant_id,
                        line.request.quantity,
                        line.reservation_id,
                        rows[line.request.variant_id].level_version,
                    )
                    for line in lines
                    if line.reservation_id is not None
                ]
                if counted:
                    outcome = reservations.reserve_variants(rt.redis, counted, expires_at)
                    if outcome.status in ("missing", "stale"):
                        raise _AgainError(
                            variants=[counted[outcome.line].variant_id], force=outcome.status == "stale"
                        )
                    if outcome.status == "short":
                        short = counted[outcome.line]
                        raise RefusedError(
                            409,
                            "insufficient_stock",
                            f"only {max(0, outcome.value)} of variant {short.variant_id} can be sold",
                            variant_id=short.variant_id,
                            available=max(0, outcome.value),
                        )
                    taken = reservations.counter_holds(counted)
                body = _persist(
                    session,
                    client_id=client_id,
                    key=key,
                    digest=digest,
                    request=request,
                    merchant_id=merchant_id,
                    lines=lines,
                    variant_merchants={vid: row.merchant_id for vid, row in rows.items()},
                    expires_at=expires_at,
                )
        except _AgainError as again:
            _rebuild(rt, again)
            continue
        except IntegrityError:
            reservations.release_in_redis(rt.redis, taken)
            found = _replay(rt, client_id, key, digest, wait=REPLAY_WAIT_SECONDS)
            if found is None:
                raise
            return found
        except BaseException:
            reservations.release_in_redis(rt.redis, taken)
            raise
        logger.info(
            "order accepted",
            extra={"order_id": body["id"], "merchant_id": merchant_id, "lines": len(request.lines)},
        )
        return Answer(201, body)
    raise RetryableError("stock counters are being rebuilt; try again", code="stock_busy", retry_after=1)


# --- live orders ---------------------------------------------------------------------------------------------------


def _crossings(session: Session, pin: Any, remaining: int) -> list[outbox.DomainEvent]:
    """What a purchase changed on its pin: `live.pin_updated` (the remaining allocation) every time, then
    `live.stock_low` and `live.sold_out`, each once per crossing (the pin row's flags decide)."""
    data = {
        "pin_id": pin.pin_id,
        "live_session_id": pin.session_id,
        "variant_id": pin.variant_id,
        "remaining": remaining,
        "allocation": pin.allocation,
    }
    out = [outbox.DomainEvent(LIVE_PIN_UPDATED, pin.merchant_id, {**data, "change": "purchase"})]
    if remaining <= pin.low_stock_threshold:
        crossed = session.execute(
            update(LivePin)
            .where(LivePin.id == pin.pin_id, LivePin.low_stock_notified.is_(False))
            .values(low_stock_notified=True)
        ).rowcount  # type: ignore[attr-defined]
        if crossed:
            out.append(
                outbox.DomainEvent(
                    LIVE_STOCK_LOW, pin.merchant_id, {**data, "threshold": pin.low_stock_threshold}
                )
            )
    if remaining <= 0:
        crossed = session.execute(
            update(LivePin)
            .where(LivePin.id == pin.pin_id, LivePin.sold_out_notified.is_(False))
            .values(sold_out_notified=True)
        ).rowcount  # type: ignore[attr-defined]
        if crossed:
            out.append(outbox.DomainEvent(LIVE_SOLD_OUT, pin.merchant_id, data))
    return out


def _create_live(rt: runtime.Runtime, client_id: int, key: str, digest: str, request: OrderRequest) -> Answer:
    from connector.live import sessions

    assert request.live_session_id is not None
    buyer = request.buyer_ref
    if buyer is None:
        raise RefusedError(
            422,
            "buyer_required",
            "a live order needs the buyer's reference (buyer.ref, not blank) for the per-buyer limit",
            errors=[{"field": "buyer.ref", "message": "required for a live order"}],
        )
    pins = sessions.pins_for(
        rt, client_id, request.live_session_id, [line.variant_id for line in request.lines]
    )
    for index, line in enumerate(request.lines):
        pin = pins[line.variant_id]
        if not pin.takes_orders:
            raise _takes_no_orders(pin.merchant_id)
        if pin.currency != request.currency:
            raise RefusedError(
                422,
                "currency_mismatch",
                f"lines[{index}]: the pin sells in {pin.currency}, not {request.currency}",
                errors=[{"field": "currency", "message": f"must be {pin.currency}"}],
            )
    merchant_id = next(iter(pins.values())).merchant_id
    mark = reservations.idempotency_mark(client_id, key)
    token = secrets.token_hex(8)
    skip_mark = False
    for _attempt in range(MAX_ATTEMPTS):
        expires_at = datetime.now(UTC) + reservations.DEFAULT_HOLD
        lines = [
            PinLine(
                pins[line.variant_id].pin_id,
                line.quantity,
                line.unit_price_minor,
                reservations.new_reservation_id(),
            )
            for line in request.lines
        ]
        outcome = reservations.buy_from_pins(
            rt.redis, lines, buyer=buyer, expires_at=expires_at, mark=mark, token=token, skip_mark=skip_mark
        )
        if outcome.status == "replay":
            found = _replay(rt, client_id, key, digest, wait=REPLAY_WAIT_SECONDS)
            if found is not None:
                return found
            skip_mark = True  # a mark without its order (that request failed): decide afresh
            continue
        if outcome.status == "missing":
            pin_id = lines[outcome.line].pin_id
            reservations.rebuild_pin(rt, pin_id)
            if not rt.redis.exists(reservations.pin_key(pin_id)):  # the pin is gone
                sessions.pin_cache.forget(pin_id)
                raise RefusedError(409, "pin_not_on_sale", f"pin {pin_id} is not on sale", pin_id=pin_id)
            continue
        if not outcome.ok:
            raise _live_refusal(outcome, request, lines)
        taken = reservations.pin_holds(lines)
        try:
            with rt.db.session() as session:
                remaining: dict[int, int] = {}
                for pin_line in sorted(lines, key=lambda item: item.pin_id):
                    left = (
                        session.connection()
                        .execute(
                            update(Reservation)
                            .where(
                                Reservation.id == reservations.allocation_id(pin_line.pin_id),
                                Reservation.state == reservations.ACTIVE,
                                Reservation.quantity >= pin_line.quantity,
                            )
                            .values(quantity=Reservation.quantity - pin_line.quantity)
                            .returning(Reservation.quantity)
                        )
                        .scalar()
                    )
                    if left is None:  # the database disagrees with the counter: rebuild it from the database
                        raise _AgainError(pins=[pin_line.pin_id], force=True)
                    remaining[pin_line.pin_id] = int(left)
                gens = {
                    reservations.pin_key(line.pin_id): gen
                    for line, gen in zip(lines, outcome.gens, strict=True)
                }
                if not reservations.same_generations(rt.redis, gens):
                    raise _AgainError()
                body = _persist(
                    session,
                    client_id=client_id,
                    key=key,
                    digest=digest,
                    request=request,
                    merchant_id=merchant_id,
                    lines=[
                        _Line(req, line.reservation_id, line.pin_id)
                        for req, line in zip(request.lines, lines, strict=True)
                    ],
                    variant_merchants={vid: pin.merchant_id for vid, pin in pins.items()},
                    expires_at=expires_at,
                )
                crossings: list[outbox.DomainEvent] = []
                for pin in pins.values():
                    crossings += _crossings(session, pin, remaining[pin.pin_id])
                if crossings:
                    outbox.publish(session, crossings)
        except _AgainError as again:
            reservations.release_in_redis(rt.redis, taken)
            reservations.drop_mark(rt.redis, mark, token)
            _rebuild(rt, again)
            continue
        except IntegrityError:
            reservations.release_in_redis(rt.redis, taken)
            reservations.drop_mark(rt.redis, mark, token)
            found = _replay(rt, client_id, key, digest, wait=REPLAY_WAIT_SECONDS)
            if found is None:
                raise
            return found
        except BaseException:
            reservations.release_in_redis(rt.redis, taken)
            reservations.drop_mark(rt.redis, mark, token)
            raise
        logger.info(
            "live order accepted", extra={"order_id": body["id"], "live_session_id": request.live_session_id}
        )
        logger.debug("live order buyer", extra={"order_id": body["id"], "buyer": buyer})
        return Answer(201, body)
    raise RetryableError("stock counters are being rebuilt; try again", code="stock_busy", retry_after=1)


def _live_refusal(
    outcome: reservations.Outcome, request: OrderRequest, lines: Sequence[PinLine]
) -> RefusedError:
    line = request.lines[outcome.line]
    pin_id = lines[outcome.line].pin_id
    if outcome.status == "price":
        return RefusedError(
            409,
            "price_changed",
            "the price of a line is not the pin's flash price",
            lines=[
                {
                    "line": outcome.line,
                    "variant_id": line.variant_id,
                    "unit_price_minor": line.unit_price_minor,
                    "current_price_minor": outcome.value,
                    "currency": request.currency,
                }
            ],
        )
    if outcome.status == "limit":
        return RefusedError(
            409,
            "buyer_limit_exceeded",
            f"the buyer may buy {max(0, outcome.value)} more of pin {pin_id}",
            pin_id=pin_id,
            remaining_for_buyer=max(0, outcome.value),
        )
    if outcome.status == "short":
        left = max(0, outcome.value)
        return RefusedError(
            409,
            "sold_out" if left == 0 else "insufficient_stock",
            f"pin {pin_id} has {left} left",
            pin_id=pin_id,
            available=left,
        )
    return RefusedError(409, "pin_not_on_sale", f"pin {pin_id} is not on sale", pin_id=pin_id)


def create_order(
    rt: runtime.Runtime, client_id: int, idempotency_key: str, request: OrderRequest, digest: str
) -> Answer:
    """Accept an order once per (client, key): validate, hold stock, persist `accepted`, queue the push."""
    if request.live_session_id is not None:
        return _create_live(rt, client_id, idempotency_key, digest, request)
    found = _replay(rt, client_id, idempotency_key, digest)
    if found is not None:
        return found
    mark = reservations.idempotency_mark(client_id, idempotency_key)
    token = secrets.token_hex(8)
    if not reservations.claim_mark(rt.redis, mark, token):
        # Another request with this key is being answered: answer what it answers.
        found = _replay(rt, client_id, idempotency_key, digest, wait=REPLAY_WAIT_SECONDS)
        if found is not None:
            return found
        token = ""  # a mark left by a request that made nothing: go on without it
    try:
        return _create_regular(rt, client_id, idempotency_key, digest, request)
    except BaseException:
        if token:
            reservations.drop_mark(rt.redis, mark, token)
        raise


# --- reading ----------------------------------------------------------------------------------------------------


def _owned(session: Session, client_id: int, public_id: str, *, lock: bool = False) -> Order:
    query = select(Order).where(Order.public_id == public_id, Order.platform_client_id == client_id)
    if lock:
        query = query.with_for_update()
    order = session.scalar(query)
    if order is None:
        raise NotFoundError(f"order {public_id} not found", code="order_not_found")
    return order


def _lines(session: Session, order_ids: Sequence[int]) -> dict[int, list[OrderLine]]:
    out: dict[int, list[OrderLine]] = {oid: [] for oid in order_ids}
    if order_ids:
        for line in session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
        ):
            out[line.order_id].append(line)
    return out


def _hold_expiry(session: Session, order_ids: Sequence[int]) -> dict[int, datetime]:
    if not order_ids:
        return {}
    rows = session.execute(
        select(Reservation.order_id, Reservation.expires_at).where(
            Reservation.order_id.in_(order_ids), Reservation.state == reservations.ACTIVE
        )
    )
    out: dict[int, datetime] = {}
    for order_id, expires in rows:
        if order_id is not None and expires is not None:
            out[order_id] = min(expires, out.get(order_id, expires))
    return out


def get_order(rt: runtime.Runtime, client_id: int, public_id: str) -> dict[str, Any]:
    with rt.db.session() as session:
        order = _owned(session, client_id, public_id)
        return order_body(
            order, _lines(session, [order.id])[order.id], _hold_expiry(session, [order.id]).get(order.id)
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
        lines = _lines(session, ids)
        expiry = _hold_expiry(session, ids)
        data = [order_body(o, lines[o.id], expiry.get(o.id)) for o in page]
    return data, (page[-1].id if len(orders) > limit else None)


# --- cancellation ---------------------------------------------------------------------------------------------


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
        order = _owned(session, client_id, public_id, lock=True)
        if order.status == OrderStatus.CANCELLED.value:
            return order_body(order, _lines(session, [order.id])[order.id])
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
        holds = reservations.release_order(session, order.id)
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
        body = order_body(order, _lines(session, [order.id])[order.id])
    reservations.release_in_redis(rt.redis, holds)
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
