"""Domain events: stored once, in the caller's transaction, and handed to subscribers (outbound webhooks)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from connector.domain.event_types import INVENTORY_UPDATED as INVENTORY_UPDATED
from connector.domain.event_types import PRODUCT_DELETED as PRODUCT_DELETED
from connector.domain.event_types import PRODUCT_UPDATED as PRODUCT_UPDATED
from connector.infra import bulk_insert
from connector.infra.models import EventPayload

logger = logging.getLogger(__name__)


Subscriber = Callable[[Session, Sequence[dict[str, Any]]], None]
_subscribers: list[Subscriber] = []
_DEFERRED = "outbox.deferred"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    type: str
    merchant_id: int | None
    data: dict[str, Any]
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def new_event_id() -> str:
    """Time-ordered, unique id used as the event's `webhook-id`: msg_<48-bit ms><80 random bits>."""
    return next(_event_ids(1))


def _event_ids(count: int) -> Iterator[str]:
    """`count` ids of the form `new_event_id` gives, with one read of the system's random source for all."""
    stamp = f"msg_{int(time.time() * 1000):012x}"
    random = os.urandom(10 * count).hex()
    return (stamp + random[i : i + 20] for i in range(0, 20 * count, 20))


def subscribe(subscriber: Subscriber) -> None:
    """Called with (session, stored rows) inside the publishing transaction; composition roots register."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


def publish(session: Session, events: Sequence[DomainEvent]) -> int:
    """Store `events` in the session's transaction: they exist if and only if the change that caused them does.
    Inside `deferred(session)` they are stored with the block's other events when it ends."""
    if not events:
        return 0
    ids = _event_ids(len(events))
    rows = [
        {
            "id": next(ids),
            "merchant_id": e.merchant_id,
            "type": e.type,
            "occurred_at": e.occurred_at,
            "data": e.data,
        }
        for e in events
    ]
    waiting = session.info.get(_DEFERRED)
    if waiting is not None:
        waiting.extend(rows)
    else:
        _store(session, rows)
    return len(rows)


def _store(session: Session, rows: list[dict[str, Any]]) -> None:
    bulk_insert.insert_many(session.connection(), EventPayload.__table__, rows)  # type: ignore[arg-type]
    for subscriber in _subscribers:
        subscriber(session, rows)


def flush(session: Session) -> None:
    """Inside `deferred(session)`: store the events published so far now (and their subscribers' rows),
    so that the writes after it are the transaction's last; outside it, events are already stored."""
    waiting = session.info.get(_DEFERRED)
    if waiting:
        rows = list(waiting)
        waiting.clear()
        _store(session, rows)


@contextmanager
def deferred(session: Session) -> Iterator[None]:
    """The events published in `session` inside the block are stored together when it ends without error,
    still in the transaction: one insert and one subscriber pass for a batch of changes (a group commit)."""
    if _DEFERRED in session.info:  # already inside a deferring block: its end stores them
        yield
        return
    rows: list[dict[str, Any]] = []
    session.info[_DEFERRED] = rows
    try:
        yield
    finally:
        session.info.pop(_DEFERRED, None)
    if rows:
        _store(session, rows)
