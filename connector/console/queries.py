"""What the console's pages read: merchants with their health and counts, a merchant's orders, live sessions
with their pins' remaining allocation, showcases, and the series the small charts draw.

Reads only; every function takes the merchant ids the reader may see (None: every merchant).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from redis import Redis
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from connector.infra.models import (
    Delivery,
    EventPayload,
    InboundEvent,
    LivePin,
    LiveSession,
    Merchant,
    Order,
    Product,
    Showcase,
    SyncRun,
    Variant,
)
from connector.stock import counters

logger = logging.getLogger(__name__)

Visible = Collection[int] | None
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def _scoped(query: SelectT, column: Any, visible: Visible) -> SelectT:
    return query if visible is None else query.where(column.in_(list(visible)))


@dataclass(frozen=True, slots=True)
class MerchantRow:
    """A merchant as the list shows it."""

    merchant: Merchant
    last_run: SyncRun | None
    counts: dict[str, int] = field(default_factory=dict)


def _counts(session: Session, column: Any, visible: Visible, *where: Any) -> dict[int, int]:
    query = _scoped(select(column, func.count()).group_by(column), column, visible)
    if where:
        query = query.where(*where)
    return {merchant_id: int(n) for merchant_id, n in session.execute(query)}


def merchant_rows(session: Session, visible: Visible) -> list[MerchantRow]:
    """The merchants the reader may see, by name, with their newest run and counts of what they hold."""
    merchants = list(session.scalars(_scoped(select(Merchant).order_by(Merchant.name), Merchant.id, visible)))
    ids = [m.id for m in merchants]
    newest = dict(
        session.execute(
            select(SyncRun.merchant_id, func.max(SyncRun.id))
            .where(SyncRun.merchant_id.in_(ids))
            .group_by(SyncRun.merchant_id)
        ).all()
    )
    runs = {
        r.merchant_id: r
        for r in session.scalars(select(SyncRun).where(SyncRun.id.in_(list(newest.values()))))
    }
    counted = {
        "products": _counts(session, Product.merchant_id, ids),
        "variants": _counts(session, Variant.merchant_id, ids),
        "orders": _counts(session, Order.merchant_id, ids),
        "failed webhooks": _counts(session, InboundEvent.merchant_id, ids, InboundEvent.status == "failed"),
    }
    return [
        MerchantRow(
            m, runs.get(m.id), {name: by_merchant.get(m.id, 0) for name, by_merchant in counted.items()}
        )
        for m in merchants
    ]


def orders(session: Session, merchant_id: int, limit: int = 25) -> list[Order]:
    """The merchant's newest orders."""
    query = select(Order).where(Order.merchant_id == merchant_id).order_by(Order.id.desc()).limit(limit)
    return list(session.scalars(query))


def showcases(session: Session, merchant_id: int) -> list[Showcase]:
    return list(
        session.scalars(select(Showcase).where(Showcase.merchant_id == merchant_id).order_by(Showcase.id))
    )


@dataclass(frozen=True, slots=True)
class PinRow:
    pin: LivePin
    title: str
    remaining: int | None


@dataclass(frozen=True, slots=True)
class LiveRow:
    session: LiveSession
    merchant_name: str
    pins: list[PinRow]


def live_sessions(session: Session, redis: Redis, visible: Visible, *, limit: int = 30) -> list[LiveRow]:
    """Live and scheduled sessions first, then the newest ended ones, with each pin's remaining allocation
    (the live Redis counter of an active pin; 0 once the pin ended)."""
    query = _scoped(
        select(LiveSession, Merchant.name)
        .join(Merchant, Merchant.id == LiveSession.merchant_id)
        .order_by((LiveSession.status == "ended").asc(), LiveSession.id.desc())
        .limit(limit),
        LiveSession.merchant_id,
        visible,
    )
    found = session.execute(query).all()
    pins: dict[int, list[tuple[LivePin, str]]] = {}
    if found:
        for pin, title in session.execute(
            select(LivePin, Variant.title)
            .join(Variant, Variant.id == LivePin.variant_id)
            .where(LivePin.session_id.in_([live.id for live, _ in found]))
            .order_by(LivePin.id)
        ):
            pins.setdefault(pin.session_id, []).append((pin, title))
    active = [pin.id for rows in pins.values() for pin, _ in rows if pin.status == "active"]
    remaining = counters.pin_remaining(redis, active)
    return [
        LiveRow(
            live,
            name,
            [
                PinRow(pin, title, remaining.get(pin.id) if pin.status == "active" else 0)
                for pin, title in pins.get(live.id, [])
            ],
        )
        for live, name in found
    ]


# --- chart series ---------------------------------------------------------------------------------------------


def events_per_minute(session: Session, visible: Visible, *, minutes: int = 60) -> list[int]:
    """Domain events recorded in each of the last `minutes` minutes, oldest first."""
    now = datetime.now(UTC)
    since = now - timedelta(minutes=minutes)
    query = _scoped(
        select(EventPayload.occurred_at).where(EventPayload.occurred_at >= since).limit(200_000),
        EventPayload.merchant_id,
        visible,
    )
    buckets = [0] * minutes
    for (at,) in session.execute(query):
        index = int((at - since).total_seconds() // 60)
        if 0 <= index < minutes:
            buckets[index] += 1
    return buckets


def push_latencies(session: Session, visible: Visible, *, limit: int = 40) -> list[float]:
    """Seconds from order to the store's confirmation for the newest confirmed orders, oldest first."""
    query = _scoped(
        select(Order.created_at, Order.updated_at)
        .where(Order.status == "confirmed", Order.store_order_ref.is_not(None))
        .order_by(Order.id.desc())
        .limit(limit),
        Order.merchant_id,
        visible,
    )
    return [
        max(0.0, (updated - created).total_seconds())
        for created, updated in reversed(session.execute(query).all())
    ]


def deliveries_by_outcome(session: Session, visible: Visible, *, hours: int = 24) -> dict[str, int]:
    """Webhook deliveries to the platform created in the last `hours`, by status."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    query = _scoped(
        select(Delivery.status, func.count())
        .join(EventPayload, EventPayload.id == Delivery.payload_id)
        .where(Delivery.created_at >= since)
        .group_by(Delivery.status),
        EventPayload.merchant_id,
        visible,
    )
    counted = Counter({status: int(n) for status, n in session.execute(query)})
    return {status: counted.get(status, 0) for status in ("succeeded", "pending", "failed")}
