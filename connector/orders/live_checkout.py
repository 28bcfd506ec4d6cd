"""Live checkout: a purchase from a live session's pins.

One Lua call (`connector.stock.counters.buy_from_pins`) checks that each pin is on sale, the price, the buyer's
limit and the allocation together, and sets the request's idempotency mark, so a refusal (sold out, over the
limit) touches no database; an accepted purchase then writes in one short transaction, shared with the
purchases of the same web process waiting meanwhile (`connector.infra.group_commit`; a 201 only once it
committed): the orders (`connector.orders.accept.persist_many`) with the pins' `live.pin_updated`,
`live.stock_low` and `live.sold_out` events, then, last, the allocation rows
(`connector.stock.holds.take_from_allocation`, one update per pin), whose lock every purchase of the pin waits
for.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.errors import RefusedError, RetryableError
from connector.domain.event_types import LIVE_PIN_UPDATED, LIVE_SOLD_OUT, LIVE_STOCK_LOW
from connector.domain.orders import LIVE, Attribution
from connector.infra import outbox, runtime
from connector.infra.models import LivePin
from connector.live import sessions
from connector.live.sessions import PinInfo
from connector.orders.accept import (
    MAX_ATTEMPTS,
    REPLAY_WAIT_SECONDS,
    AcceptedLine,
    AgainError,
    Answer,
    NewOrder,
    OrderRequest,
    persist_many,
    rebuild_after,
    replay,
    takes_no_orders,
)
from connector.stock import counters, holds, rebuild
from connector.stock.counters import Hold, Outcome, PinLine

logger = logging.getLogger(__name__)


def _crossings(session: Session, pin: PinInfo, remaining: int) -> list[outbox.DomainEvent]:
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


def _pins(rt: runtime.Runtime, client_id: int, request: OrderRequest) -> tuple[str, dict[int, PinInfo]]:
    """The buyer's key and the pins the lines buy from; refuses a request without a buyer or that the pins'
    store or currency does not allow."""
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
            raise takes_no_orders(pin.merchant_id)
        if pin.currency != request.currency:
            raise RefusedError(
                422,
                "currency_mismatch",
                f"lines[{index}]: the pin sells in {pin.currency}, not {request.currency}",
                errors=[{"field": "currency", "message": f"must be {pin.currency}"}],
            )
    return buyer, pins


@dataclass(frozen=True, slots=True)
class _Purchase:
    """An accepted purchase to write: Redis took its units."""

    rt: runtime.Runtime
    client_id: int
    key: str
    digest: str
    request: OrderRequest
    pins: dict[int, PinInfo]
    lines: Sequence[PinLine]
    outcome: Outcome
    expires_at: datetime


def _generations(purchases: Sequence[_Purchase]) -> dict[str, str]:
    """The counters' generations the purchases were made against: one per counter, else `AgainError` (a
    counter rebuilt between two of them: each again, alone)."""
    gens: dict[str, str] = {}
    for purchase in purchases:
        for line, gen in zip(purchase.lines, purchase.outcome.gens, strict=True):
            if gens.setdefault(counters.pin_key(line.pin_id), gen) != gen:
                raise AgainError()
    return gens


def _take(session: Session, purchases: Sequence[_Purchase], gens: dict[str, str]) -> None:
    """Take the purchases' units out of their pins' allocation rows (one update per pin), the counters'
    generations checked under the rows' lock: `AgainError` when the database disagrees with a counter
    (rebuilt from the database then) or a counter was rebuilt since."""
    totals: dict[int, int] = {}
    for purchase in purchases:
        for line in purchase.lines:
            totals[line.pin_id] = totals.get(line.pin_id, 0) + line.quantity
    for pin_id in sorted(totals):
        if holds.take_from_allocation(session, pin_id, totals[pin_id]) is None:
            raise AgainError(pins=[pin_id], force=True)
    if not counters.same_generations(purchases[0].rt.redis, gens):
        raise AgainError()


def _new_order(session: Session, purchase: _Purchase) -> NewOrder:
    """The order of a purchase, with its pins' events: what each pin had left once the purchase script took
    its units (the counter decides the purchases' order)."""
    pins, request = purchase.pins, purchase.request
    crossings: list[outbox.DomainEvent] = []
    remaining = {
        line.pin_id: left for line, left in zip(purchase.lines, purchase.outcome.remaining, strict=True)
    }
    for pin in sorted(pins.values(), key=lambda pin: pin.pin_id):  # the pin rows' locks in one order
        crossings += _crossings(session, pin, remaining[pin.pin_id])
    creator = next(iter(pins.values())).creator_ref
    if creator:  # the session's creator sold it, whatever link the buyer came through
        request = replace(request, attribution=Attribution(via=LIVE, creator_ref=creator))
    return NewOrder(
        client_id=purchase.client_id,
        key=purchase.key,
        digest=purchase.digest,
        request=request,
        merchant_id=next(iter(pins.values())).merchant_id,
        lines=[
            AcceptedLine(req, line.reservation_id, line.pin_id)
            for req, line in zip(request.lines, purchase.lines, strict=True)
        ],
        variant_merchants={vid: pin.merchant_id for vid, pin in pins.items()},
        expires_at=purchase.expires_at,
        events=crossings,
    )


def _write(session: Session, purchases: list[_Purchase]) -> list[dict[str, Any]]:
    """The purchases' write (a `connector.infra.group_commit` write), a few statements for all of them: the
    orders with their events (and the events' deliveries) first, the pins' allocation rows last, so that
    their lock, which every purchase of a pin waits for, is held only from that update to the commit."""
    gens = _generations(purchases)
    bodies = persist_many(session, [_new_order(session, purchase) for purchase in purchases])
    outbox.flush(session)
    _take(session, purchases, gens)
    return bodies


def _give_back(rt: runtime.Runtime, taken: Sequence[Hold], mark: str, token: str) -> None:
    counters.release_in_redis(rt.redis, taken)
    counters.drop_mark(rt.redis, mark, token)


def create_live(
    rt: runtime.Runtime,
    client_id: int,
    key: str,
    digest: str,
    request: OrderRequest,
    key_check: counters.KeyCheck | None = None,
) -> Answer:
    """Buy from the session's pins once per (client, key): Redis decides, then one short write. With
    `key_check` (a cached API key lookup), the same Lua call confirms the key generation first:
    `counters.KeyChangedError` when it changed."""
    buyer, pins = _pins(rt, client_id, request)
    mark = counters.idempotency_mark(client_id, key)
    token = secrets.token_hex(8)
    skip_mark = False
    for _attempt in range(MAX_ATTEMPTS):
        expires_at = datetime.now(UTC) + holds.DEFAULT_HOLD
        lines = [
            PinLine(
                pins[line.variant_id].pin_id,
                line.quantity,
                line.unit_price_minor,
                counters.new_reservation_id(),
            )
            for line in request.lines
        ]
        outcome = counters.buy_from_pins(
            rt.redis,
            lines,
            buyer=buyer,
            expires_at=expires_at,
            mark=mark,
            token=token,
            skip_mark=skip_mark,
            key_check=key_check,
        )
        if outcome.status == "key":
            raise counters.KeyChangedError()
        if outcome.status == "replay":
            found = replay(rt, client_id, key, digest, wait=REPLAY_WAIT_SECONDS)
            if found is not None:
                return found
            skip_mark = True  # a mark without its order (that request failed): decide afresh
            continue
        if outcome.status == "missing":
            pin_id = lines[outcome.line].pin_id
            rebuild.rebuild_pin(rt, pin_id)
            if not rt.redis.exists(counters.pin_key(pin_id)):  # the pin is gone
                sessions.pin_cache.forget(pin_id)
                raise RefusedError(409, "pin_not_on_sale", f"pin {pin_id} is not on sale", pin_id=pin_id)
            continue
        if not outcome.ok:
            raise _refusal(outcome, request, lines)
        taken = counters.pin_holds(lines)
        try:
            body = rt.group_commit.run(
                _Purchase(rt, client_id, key, digest, request, pins, lines, outcome, expires_at), _write
            )
        except AgainError as again:
            _give_back(rt, taken, mark, token)
            rebuild_after(rt, again)
            continue
        except IntegrityError:
            _give_back(rt, taken, mark, token)
            found = replay(rt, client_id, key, digest, wait=REPLAY_WAIT_SECONDS)
            if found is None:
                raise
            return found
        except BaseException:
            _give_back(rt, taken, mark, token)
            raise
        logger.info(
            "live order accepted", extra={"order_id": body["id"], "live_session_id": request.live_session_id}
        )
        logger.debug("live order buyer", extra={"order_id": body["id"], "buyer": buyer})
        return Answer(201, body)
    raise RetryableError("stock counters are being rebuilt; try again", code="stock_busy", retry_after=1)


def _refusal(outcome: Outcome, request: OrderRequest, lines: Sequence[PinLine]) -> RefusedError:
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
