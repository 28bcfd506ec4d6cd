"""Live-stream shopping: sessions, pinned products with flash price, stock allocation and per-buyer limit.

A pin takes its allocation out of the variant's sellable stock when it is made (a hold row, `rsv_pin_<id>`,
written by `connector.stock.holds`, reserved through the variant counter; refused with 409 when there is not
enough), and gives back what is unsold when the pin or its session ends. Purchases go through
`connector.orders.live_checkout` against the pin's Redis counter. A pin is on sale while it is active, its session is live and its countdown (if any) is not over.

Events: `live.pin_updated` when a pin is made, goes on or off sale (session start and end), ends, or comes
back above its low-stock threshold; `live.stock_low` and `live.sold_out` once per crossing, published by the
purchase that crosses (checkout). The low-stock threshold is the pin's own, else a tenth of its allocation.

Facts of a pin that never change (its session, variant, merchant, client, currency, allocation, threshold)
are cached in-process for the purchase path, so a purchase refused in Redis reads no database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain import registry
from connector.domain.errors import NotFoundError, RefusedError, RetryableError
from connector.domain.event_types import LIVE_PIN_UPDATED
from connector.domain.timestamps import iso
from connector.infra import outbox, runtime
from connector.infra.models import AffiliateProgram, LivePin, LiveSession, Merchant
from connector.stock import counters, holds, rebuild
from connector.stock.counters import VariantLine
from connector.stock.reconcile import RECONCILE_BATCH

logger = logging.getLogger(__name__)

PIN_CACHE_SECONDS: Final = 30.0
MAX_ATTEMPTS: Final = 5
SCHEDULED, LIVE, ENDED = "scheduled", "live", "ended"


def default_threshold(allocation: int) -> int:
    return max(1, allocation // 10)


# --- the purchase path's pin cache ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PinInfo:
    pin_id: int
    session_id: int
    variant_id: int
    merchant_id: int
    platform_client_id: int | None
    currency: str
    allocation: int
    low_stock_threshold: int
    takes_orders: bool = True
    creator_ref: str | None = None
    """The session's creator, credited with its sales (`connector.orders.live_checkout`)."""


class _PinCache:
    """Pins by (database, session, variant) for `PIN_CACHE_SECONDS` (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int, int], tuple[float, PinInfo]] = {}

    def get(self, database: str, session_id: int, variant_id: int) -> PinInfo | None:
        with self._lock:
            entry = self._entries.get((database, session_id, variant_id))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, database: str, info: PinInfo) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            key = (database, info.session_id, info.variant_id)
            self._entries[key] = (time.monotonic() + PIN_CACHE_SECONDS, info)

    def forget(self, pin_id: int) -> None:
        with self._lock:
            for key in [key for key, (_, info) in self._entries.items() if info.pin_id == pin_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


pin_cache = _PinCache()


def pins_for(
    rt: runtime.Runtime, client_id: int, session_id: int, variant_ids: Sequence[int]
) -> dict[int, PinInfo]:
    """The session's pins of `variant_ids` (cached); 404 for another client's session, 422 for a variant not
    pinned in it."""
    found: dict[int, PinInfo] = {}
    missing = []
    database = rt.db.url
    for variant_id in variant_ids:
        info = pin_cache.get(database, session_id, variant_id)
        if info is None:
            missing.append(variant_id)
        else:
            found[variant_id] = info
    if missing:
        with rt.db.session() as session:
            live = session.execute(
                select(
                    LiveSession.id,
                    LiveSession.creator_ref,
                    Merchant.platform_client_id,
                    Merchant.kind,
                    Merchant.config,
                )
                .join(Merchant, Merchant.id == LiveSession.merchant_id)
                .where(LiveSession.id == session_id)
            ).first()
            if live is None or live.platform_client_id != client_id:
                raise NotFoundError(f"live session {session_id} not found", code="live_session_not_found")
            rows = session.execute(
                select(LivePin, LiveSession.merchant_id)
                .join(LiveSession, LiveSession.id == LivePin.session_id)
                .where(LivePin.session_id == session_id, LivePin.variant_id.in_(missing))
            ).all()
            for pin, merchant_id in rows:
                info = PinInfo(
                    pin_id=pin.id,
                    session_id=pin.session_id,
                    variant_id=pin.variant_id,
                    merchant_id=merchant_id,
                    platform_client_id=live.platform_client_id,
                    currency=pin.currency,
                    allocation=pin.allocation,
                    low_stock_threshold=pin.low_stock_threshold
                    if pin.low_stock_threshold is not None
                    else default_threshold(pin.allocation),
                    takes_orders=registry.takes_orders(live.kind, live.config or {}),
                    creator_ref=live.creator_ref,
                )
                pin_cache.put(database, info)
                found[pin.variant_id] = info
    for index, variant_id in enumerate(variant_ids):
        info = found.get(variant_id)
        if info is None:
            raise RefusedError(
                422,
                "variant_not_pinned",
                f"lines[{index}]: variant {variant_id} is not pinned in live session {session_id}",
                errors=[{"field": f"lines.{index}.variant_id", "message": "not pinned in this live session"}],
            )
        if info.platform_client_id != client_id:
            raise NotFoundError(f"live session {session_id} not found", code="live_session_not_found")
    return found


# --- representations ----------------------------------------------------------------------------------------------


def pin_body(pin: LivePin, remaining: int | None) -> dict[str, Any]:
    return {
        "id": pin.id,
        "live_session_id": pin.session_id,
        "variant_id": pin.variant_id,
        "flash_price_minor": pin.flash_price_minor,
        "currency": pin.currency,
        "allocation": pin.allocation,
        "remaining": remaining if pin.status == "active" else 0,
        "per_buyer_limit": pin.per_buyer_limit,
        "low_stock_threshold": pin.low_stock_threshold,
        "countdown_ends_at": iso(pin.countdown_ends_at),
        "status": pin.status,
        "created_at": iso(pin.created_at),
        "ended_at": iso(pin.ended_at),
    }


def session_body(live: LiveSession, pins: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": live.id,
        "merchant_id": live.merchant_id,
        "creator_ref": live.creator_ref,
        "affiliate_program_id": live.affiliate_program_id,
        "title": live.title,
        "status": live.status,
        "scheduled_start": iso(live.scheduled_start),
        "started_at": iso(live.started_at),
        "ended_at": iso(live.ended_at),
        "created_at": iso(live.created_at),
        "pins": list(pins),
    }


def _pin_event(pin: LivePin, merchant_id: int, remaining: int | None, change: str) -> outbox.DomainEvent:
    return outbox.DomainEvent(LIVE_PIN_UPDATED, merchant_id, {**pin_body(pin, remaining), "change": change})


def _remaining(rt: runtime.Runtime, pins: Sequence[LivePin]) -> dict[int, int | None]:
    active = [pin.id for pin in pins if pin.status == "active"]
    found = counters.pin_remaining(rt.redis, active)
    for pin_id, value in list(found.items()):
        if value is None:
            rebuild.rebuild_pin(rt, pin_id)
            found[pin_id] = counters.pin_remaining(rt.redis, [pin_id])[pin_id]
    return found


# --- sessions -----------------------------------------------------------------------------------------------------


def _owned_session(session: Session, client_id: int, session_id: int, *, lock: bool = False) -> LiveSession:
    query = (
        select(LiveSession)
        .join(Merchant, Merchant.id == LiveSession.merchant_id)
        .where(LiveSession.id == session_id, Merchant.platform_client_id == client_id)
    )
    if lock:  # NO KEY UPDATE: purchases inserting orders that reference the session are not blocked
        query = query.with_for_update(of=LiveSession, key_share=True)
    live = session.scalar(query)
    if live is None:
        raise NotFoundError(f"live session {session_id} not found", code="live_session_not_found")
    return live


def _check_program(session: Session, merchant_id: int, creator_ref: str | None, program_id: int) -> None:
    """The program a session's sales earn under: the merchant's, active, and open or offered to its creator."""

    def refused(status: int, code: str, message: str) -> RefusedError:
        return RefusedError(
            status, code, message, errors=[{"field": "affiliate_program_id", "message": message}]
        )

    program = session.get(AffiliateProgram, program_id)
    if program is None or program.merchant_id != merchant_id:
        raise refused(422, "program_not_found", f"merchant {merchant_id} has no program {program_id}")
    if creator_ref is None:
        raise refused(422, "program_needs_creator", "a program is for a session hosted by a creator")
    if program.status != "active":
        raise refused(409, "program_ended", f"program {program_id} has ended")
    if program.kind == "targeted" and program.creator_ref != creator_ref:
        raise refused(422, "program_not_for_creator", f"program {program_id} is offered to another creator")


def create_session(
    rt: runtime.Runtime,
    client_id: int,
    *,
    merchant_id: int,
    title: str,
    creator_ref: str | None,
    scheduled_start: datetime | None,
    affiliate_program_id: int | None = None,
) -> dict[str, Any]:
    """A scheduled session; its creator's sales earn under `affiliate_program_id` when given, else under
    whatever program pays the creator when the order is confirmed."""
    with rt.db.session() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None or merchant.platform_client_id != client_id:
            raise RefusedError(
                422,
                "merchant_not_found",
                f"merchant {merchant_id} does not exist",
                errors=[{"field": "merchant_id", "message": "no such merchant"}],
            )
        if affiliate_program_id is not None:
            _check_program(session, merchant_id, creator_ref, affiliate_program_id)
        live = LiveSession(
            merchant_id=merchant_id,
            title=title,
            creator_ref=creator_ref,
            affiliate_program_id=affiliate_program_id,
            scheduled_start=scheduled_start,
        )
        session.add(live)
        session.flush()
        body = session_body(live, [])
    logger.info("live session created", extra={"live_session_id": body["id"], "merchant_id": merchant_id})
    return body


def get_session(rt: runtime.Runtime, client_id: int, session_id: int) -> dict[str, Any]:
    with rt.db.session() as session:
        live = _owned_session(session, client_id, session_id)
        pins = list(
            session.scalars(select(LivePin).where(LivePin.session_id == live.id).order_by(LivePin.id))
        )
    remaining = _remaining(rt, pins)
    return session_body(live, [pin_body(pin, remaining.get(pin.id)) for pin in pins])


def start_session(rt: runtime.Runtime, client_id: int, session_id: int) -> dict[str, Any]:
    """Go live: every active pin goes on sale. Starting a live session again changes nothing."""
    with rt.db.session() as session:
        live = _owned_session(session, client_id, session_id, lock=True)
        if live.status == ENDED:
            raise RefusedError(409, "live_session_ended", f"live session {session_id} has ended")
        started = live.status == SCHEDULED
        pins = list(
            session.scalars(select(LivePin).where(LivePin.session_id == live.id, LivePin.status == "active"))
        )
        if started:
            live.status = LIVE
            live.started_at = datetime.now(UTC)
            outbox.publish(session, [_pin_event(pin, live.merchant_id, None, "on_sale") for pin in pins])
    if started:
        for pin in pins:
            rebuild.rebuild_pin(rt, pin.id, only_missing=False)
        logger.info("live session started", extra={"live_session_id": session_id, "pins": len(pins)})
    return get_session(rt, client_id, session_id)


def end_session(rt: runtime.Runtime, client_id: int, session_id: int) -> dict[str, Any]:
    """End the session and every pin of it; unsold allocations go back to sellable stock."""
    with rt.db.session() as session:
        live = _owned_session(session, client_id, session_id, lock=True)
        ended: list[LivePin] = []
        if live.status != ENDED:
            live.status = ENDED
            live.ended_at = datetime.now(UTC)
            pins = list(
                session.scalars(
                    select(LivePin)
                    .where(LivePin.session_id == live.id, LivePin.status == "active")
                    .order_by(LivePin.id)
                )
            )
            for pin in pins:
                _end_pin(session, pin, live.merchant_id, "session_ended")
            ended = pins
    _after_end(rt, ended)
    if ended:
        logger.info("live session ended", extra={"live_session_id": session_id, "pins": len(ended)})
    return get_session(rt, client_id, session_id)


# --- pins ---------------------------------------------------------------------------------------------------------


def _pinnable(session: Session, live: LiveSession, variant_id: int) -> holds.StockRow:
    """The variant to pin, under its share lock: the session's merchant's, for sale, not pinned yet."""
    row = holds.lock_variants(session, [variant_id]).get(variant_id)
    if row is None or row.merchant_id != live.merchant_id:
        raise RefusedError(
            422,
            "variant_not_found",
            f"variant {variant_id} is not sold by the session's merchant",
            errors=[{"field": "variant_id", "message": "no such variant of this merchant"}],
        )
    if row.status != "active" or row.merchant_status != "installed":
        raise RefusedError(409, "variant_not_sellable", f"variant {variant_id} is not for sale")
    existing = session.scalar(
        select(LivePin.id).where(LivePin.session_id == live.id, LivePin.variant_id == variant_id)
    )
    if existing is not None:
        raise RefusedError(
            409,
            "variant_already_pinned",
            f"variant {variant_id} is already pinned",
            pin_id=existing,
        )
    return row


def _reserve_allocation(
    rt: runtime.Runtime, row: holds.StockRow, allocation: int, hold_id: str
) -> list[counters.Hold]:
    """Take a tracked variant's allocation out of its counter; returns the hold to give back on failure."""
    if not row.tracked:
        return []
    line = VariantLine(row.variant_id, allocation, hold_id, row.level_version)
    outcome = counters.reserve_variants(rt.redis, [line], None)
    if outcome.status in ("missing", "stale"):
        raise _RetryError(force=outcome.status == "stale")
    if outcome.status == "short":
        raise RefusedError(
            409,
            "insufficient_stock",
            f"only {max(0, outcome.value)} of variant {row.variant_id} can be allocated",
            variant_id=row.variant_id,
            available=max(0, outcome.value),
        )
    return counters.counter_holds([line])


def create_pin(
    rt: runtime.Runtime,
    client_id: int,
    session_id: int,
    *,
    variant_id: int,
    flash_price_minor: int,
    allocation: int,
    per_buyer_limit: int | None,
    countdown_ends_at: datetime | None,
    low_stock_threshold: int | None,
) -> dict[str, Any]:
    """Pin a variant: its allocation is reserved out of sellable stock at once (409 when there is not enough)."""
    for _attempt in range(MAX_ATTEMPTS):
        taken: list[counters.Hold] = []
        try:
            with rt.db.session() as session:
                live = _owned_session(session, client_id, session_id, lock=True)
                if live.status == ENDED:
                    raise RefusedError(409, "live_session_ended", f"live session {session_id} has ended")
                row = _pinnable(session, live, variant_id)
                pin = LivePin(
                    session_id=live.id,
                    variant_id=variant_id,
                    flash_price_minor=flash_price_minor,
                    currency=row.currency,
                    allocation=allocation,
                    per_buyer_limit=per_buyer_limit,
                    countdown_ends_at=countdown_ends_at,
                    low_stock_threshold=low_stock_threshold
                    if low_stock_threshold is not None
                    else default_threshold(allocation),
                )
                session.add(pin)
                session.flush()
                taken = _reserve_allocation(rt, row, allocation, counters.allocation_id(pin.id))
                holds.allocate_pin(
                    session,
                    pin_id=pin.id,
                    merchant_id=live.merchant_id,
                    variant_id=variant_id,
                    quantity=allocation,
                )
                outbox.publish(session, [_pin_event(pin, live.merchant_id, allocation, "pinned")])
                session.flush()
                pin_id = pin.id
        except _RetryError as again:
            rebuild.rebuild_variant(rt, variant_id, only_missing=not again.force)
            continue
        except IntegrityError:
            counters.release_in_redis(rt.redis, taken)
            raise RefusedError(
                409, "variant_already_pinned", f"variant {variant_id} is already pinned"
            ) from None
        except BaseException:
            counters.release_in_redis(rt.redis, taken)
            raise
        rebuild.rebuild_pin(rt, pin_id, only_missing=False)
        logger.info(
            "variant pinned",
            extra={
                "pin_id": pin_id,
                "live_session_id": session_id,
                "variant_id": variant_id,
                "allocation": allocation,
            },
        )
        return get_pin(rt, client_id, session_id, pin_id)
    raise RetryableError("stock counters are being rebuilt; try again", code="stock_busy", retry_after=1)


class _RetryError(Exception):
    """The variant counter was missing or stale: rebuild it (forced when stale) and try again."""

    def __init__(self, *, force: bool) -> None:
        super().__init__("retry")
        self.force = force


def _owned_pin(session: Session, client_id: int, session_id: int, pin_id: int) -> tuple[LiveSession, LivePin]:
    live = _owned_session(session, client_id, session_id)
    pin = session.get(LivePin, pin_id)
    if pin is None or pin.session_id != live.id:
        raise NotFoundError(f"pin {pin_id} not found", code="pin_not_found")
    return live, pin


def get_pin(rt: runtime.Runtime, client_id: int, session_id: int, pin_id: int) -> dict[str, Any]:
    with rt.db.session() as session:
        _live, pin = _owned_pin(session, client_id, session_id, pin_id)
    return pin_body(pin, _remaining(rt, [pin]).get(pin.id))


def _end_pin(session: Session, pin: LivePin, merchant_id: int, change: str) -> None:
    """End a pin in the caller's transaction: its allocation hold is released (what is sold stays held by the
    orders' own rows). The counters are rebuilt after the commit (`_after_end`)."""
    now = datetime.now(UTC)
    holds.release_allocation(session, pin.id, now)
    pin.status = "ended"
    pin.ended_at = now
    outbox.publish(session, [_pin_event(pin, merchant_id, 0, change)])


def _after_end(rt: runtime.Runtime, pins: Sequence[LivePin]) -> None:
    for pin in pins:
        rebuild.rebuild_pin(rt, pin.id, only_missing=False)
    for variant_id in sorted({pin.variant_id for pin in pins}):
        rebuild.rebuild_variant(rt, variant_id, only_missing=False)


def end_pin(rt: runtime.Runtime, client_id: int, session_id: int, pin_id: int) -> dict[str, Any]:
    """Take a pin off sale for good; ending an ended pin changes nothing."""
    with rt.db.session() as session:
        live, pin = _owned_pin(session, client_id, session_id, pin_id)
        ended = pin.status == "active"
        if ended:
            _end_pin(session, pin, live.merchant_id, "ended")
    if ended:
        _after_end(rt, [pin])
        logger.info("pin ended", extra={"pin_id": pin_id, "live_session_id": session_id})
    return get_pin(rt, client_id, session_id, pin_id)


def end_expired_pins(rt: runtime.Runtime, now: datetime | None = None) -> int:
    """Periodic: end pins whose countdown is over."""
    now = now or datetime.now(UTC)
    with rt.db.session() as session:
        rows = session.execute(
            select(LivePin, LiveSession.merchant_id)
            .join(LiveSession, LiveSession.id == LivePin.session_id)
            .where(LivePin.status == "active", LivePin.countdown_ends_at < now)
            .order_by(LivePin.id)
            .limit(RECONCILE_BATCH)
        ).all()
        for pin, merchant_id in rows:
            _end_pin(session, pin, merchant_id, "countdown_over")
        pins = [pin for pin, _ in rows]
    _after_end(rt, pins)
    return len(pins)
