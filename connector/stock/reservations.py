"""Stock reservations: atomic Redis counters backed by database rows, rebuilt from the database when missing.

Two kinds of counter live in Redis, each a hash with the remaining units (`n`) and a generation (`gen`):

- a **variant counter** (`sl:stock:v:<variant>`): sellable units, i.e. the store level at the merchant's
  selling location minus every hold minus the merchant's buffer; `lv` records the level version it was
  computed from, and a reservation against a counter built from another version is refused as stale;
- a **pin counter** (`sl:stock:p:<pin>`): the unsold allocation of a live pin, with its flash price, per-buyer
  limit, whether it is on sale, and the units each buyer holds (`...:b`).

Each counter keeps its holds (`...:h`: reservation id -> "quantity|expires|buyer"), so a release gives units
back once and only for a hold the counter counted. The reserve scripts check and decrement in one step.

Every hold is also a `Reservation` row; a counter is a cache of the rows. A counter is (re)built under a
database lock: the variant row `FOR UPDATE` (pin: its allocation row), read, written to Redis with a fresh
generation, then committed. Writers that add rows take the same lock in share mode (variant) or update the
allocation row (pin) before committing, so:

- a writer that reserved in Redis *before* taking the lock checks, once it holds the lock, that the counter
  still has the generation it reserved against; otherwise a rebuild ran in between without its row, and the
  writer rolls back and starts again (the live purchase path, which must refuse without touching the
  database);
- a writer that takes the lock *first* and then reserves needs no check: no rebuild can read the database
  until it commits, and a counter lost meanwhile is rebuilt after that commit, with its row.

Two rebuilders serialize on the lock and the second sees the counter already there (`only_missing`), so a
counter is never counted twice. A release changes the row first and gives the units back in Redis after the
commit, gated by the hold, so a release racing a rebuild gives back nothing or exactly once.

Which rows hold stock of a variant is decided in one place, `connector.catalog.levels.holding()` (active holds,
and confirmed ones until the store's level has caught up with the sale), for the counters here as for the
catalog and the stock events. The periodic `reconcile` job expires holds past `expires_at`, gives back holds
that were released without their counter (an order the push job rejected), marks caught-up confirmations
settled and ends pins whose countdown is over.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from redis import Redis
from redis.commands.core import Script
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.catalog import levels
from connector.domain import registry
from connector.domain.buyers import buyer_key
from connector.domain.event_types import LIVE_PIN_UPDATED
from connector.infra import outbox, runtime
from connector.infra.models import InventoryLevel, LivePin, LiveSession, Merchant, Order, Reservation, Variant
from connector.orders import push

logger = logging.getLogger(__name__)

DEFAULT_HOLD: Final = timedelta(minutes=15)
"""How long an order's hold lasts unless the store confirms the order first (unpaid or abandoned checkout)."""
DEFAULT_LOCATION: Final = levels.DEFAULT_LOCATION
IDEMPOTENCY_MARK_SECONDS: Final = 7 * 24 * 3600
RECONCILE_BATCH: Final = 500
SETTLE_AFTER: Final = timedelta(days=2)
"""A confirmed hold whose store level never moved stops counting after this long (an inventory poll has run)."""

ACTIVE, CONFIRMED = levels.ACTIVE, levels.CONFIRMED
ACCEPTED_ORDER: Final = "accepted"
RELEASED, EXPIRED = "released", "expired"
_PREFIX: Final = "sl:stock:"

# --- keys and ids ---------------------------------------------------------------------------------------------


def variant_key(variant_id: int) -> str:
    return f"{_PREFIX}v:{variant_id}"


def pin_key(pin_id: int) -> str:
    return f"{_PREFIX}p:{pin_id}"


def holds_key(counter: str) -> str:
    return counter + ":h"


def buyers_key(counter: str) -> str:
    return counter + ":b"


def idempotency_mark(client_id: int, idempotency_key: str) -> str:
    """The Redis key marking that a request with this idempotency key made (or is making) an order."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"sl:idem:{client_id}:{digest}"


def new_reservation_id() -> str:
    return "rsv_" + secrets.token_hex(12)


def allocation_id(pin_id: int) -> str:
    """The reservation row holding a pin's allocation out of its variant's stock."""
    return f"rsv_pin_{pin_id}"


def _new_gen() -> str:
    return secrets.token_hex(8)


def _epoch(value: datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


# --- scripts -------------------------------------------------------------------------------------------------

_RESERVE_LUA = """
-- KEYS: counter, holds per line. ARGV: expires, then per line: reservation id, quantity, level version.
local lines = #KEYS / 2
for i = 1, lines do
  local c = KEYS[2 * i - 1]
  local f = redis.call('HMGET', c, 'n', 'lv')
  if not f[1] then return {'missing', i, 0} end
  if f[2] ~= ARGV[3 * i + 1] then return {'stale', i, 0} end
  if tonumber(f[1]) < tonumber(ARGV[3 * i]) then return {'short', i, tonumber(f[1])} end
end
for i = 1, lines do
  local q = tonumber(ARGV[3 * i])
  if redis.call('HSETNX', KEYS[2 * i], ARGV[3 * i - 1], q .. '|' .. ARGV[1] .. '|') == 1 then
    redis.call('HINCRBY', KEYS[2 * i - 1], 'n', -q)
  end
end
return {'ok', 0, 0}
"""

_PIN_BUY_LUA = """
-- KEYS: pin, holds, buyers per line, then the idempotency mark.
-- ARGV: buyer, expires, now, skip_mark, mark token, mark ttl, then per line: reservation id, quantity,
-- unit price. On success the mark is set: a concurrent request with the key waits for this one's answer.
local lines = (#KEYS - 1) / 3
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {'replay', 0, 0} end
local buyer = ARGV[1]
local now = tonumber(ARGV[3])
for i = 1, lines do
  local f = redis.call('HMGET', KEYS[3 * i - 2], 'n', 'act', 'price', 'lim', 'until')
  if not f[1] then return {'missing', i, 0} end
  if f[2] ~= '1' then return {'inactive', i, 0} end
  local untl = tonumber(f[5])
  if untl > 0 and now >= untl then return {'inactive', i, 0} end
  local a = 6 + 3 * (i - 1)
  if f[3] ~= ARGV[a + 3] then return {'price', i, tonumber(f[3])} end
  local q = tonumber(ARGV[a + 2])
  local lim = tonumber(f[4])
  if lim > 0 then
    local had = tonumber(redis.call('HGET', KEYS[3 * i], buyer) or '0')
    if had + q > lim then return {'limit', i, lim - had} end
  end
  if tonumber(f[1]) < q then return {'short', i, tonumber(f[1])} end
end
redis.call('SET', KEYS[#KEYS], ARGV[5], 'EX', tonumber(ARGV[6]))
local out = {'ok', 0, 0}
for i = 1, lines do
  local a = 6 + 3 * (i - 1)
  local q = tonumber(ARGV[a + 2])
  redis.call('HSET', KEYS[3 * i - 1], ARGV[a + 1], q .. '|' .. ARGV[2] .. '|' .. buyer)
  redis.call('HINCRBY', KEYS[3 * i], buyer, q)
  out[#out + 1] = redis.call('HGET', KEYS[3 * i - 2], 'gen')
  out[#out + 1] = redis.call('HINCRBY', KEYS[3 * i - 2], 'n', -q)
end
return out
"""

_RELEASE_LUA = """
-- KEYS: counter, holds, buyers. ARGV: reservation id. Gives the hold's units back once; 1 when it did.
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local q, _, buyer = string.match(v, '^(%d+)|([^|]*)|(.*)$')
q = tonumber(q)
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'n', q)
  if buyer ~= '' then
    local left = redis.call('HINCRBY', KEYS[3], buyer, -q)
    if left <= 0 then redis.call('HDEL', KEYS[3], buyer) end
  end
end
return 1
"""

_CHECK_LUA = """
-- KEYS: counters. ARGV: the generation per counter. 1 when every counter still has its generation.
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'gen') ~= ARGV[i] then return 0 end
end
return 1
"""

_DROP_MARK_LUA = """
-- KEYS: mark. ARGV: token. Deletes the mark only if this request set it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_SET_LUA = """
-- KEYS: counter, holds, buyers. ARGV: only_missing, field count, fields..., hold count, holds...,
-- buyer count, buyers... Replaces the counter whole; with only_missing, leaves an existing one alone.
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local i = 2
for k = 1, 3 do
  local count = tonumber(ARGV[i])
  local first = i + 1
  i = i + 1 + 2 * count
  local at = first
  while at < i do
    local stop = math.min(at + 399, i - 1)
    redis.call('HSET', KEYS[k], unpack(ARGV, at, stop))
    at = stop + 1
  end
end
return 1
"""


class _Scripts:
    """The Lua scripts registered on one Redis connection (SHA sent, body only after a NOSCRIPT)."""

    def __init__(self, redis: Redis):
        self.reserve: Script = redis.register_script(_RESERVE_LUA)
        self.pin_buy: Script = redis.register_script(_PIN_BUY_LUA)
        self.release: Script = redis.register_script(_RELEASE_LUA)
        self.check: Script = redis.register_script(_CHECK_LUA)
        self.drop_mark: Script = redis.register_script(_DROP_MARK_LUA)
        self.set: Script = redis.register_script(_SET_LUA)


_scripts: dict[int, _Scripts] = {}


def scripts(redis: Redis) -> _Scripts:
    found = _scripts.get(id(redis))
    if found is None:
        found = _scripts[id(redis)] = _Scripts(redis)
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- outcomes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a reserve script said: `ok`, or why not and for which line (0-based) with a figure."""

    status: str
    line: int = -1
    value: int = 0
    gens: tuple[str, ...] = ()
    remaining: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _outcome(raw: Sequence[Any]) -> Outcome:
    status = _text(raw[0])
    if status != "ok":
        return Outcome(status, int(raw[1]) - 1, int(raw[2]))
    rest = list(raw[3:])
    return Outcome(
        status,
        gens=tuple(_text(rest[i]) for i in range(0, len(rest), 2)),
        remaining=tuple(int(rest[i]) for i in range(1, len(rest), 2)),
    )


@dataclass(frozen=True, slots=True)
class VariantLine:
    variant_id: int
    quantity: int
    reservation_id: str
    level_version: int


@dataclass(frozen=True, slots=True)
class PinLine:
    pin_id: int
    quantity: int
    unit_price_minor: int
    reservation_id: str


def reserve_variants(redis: Redis, lines: Sequence[VariantLine], expires_at: datetime | None) -> Outcome:
    """Check and take stock of every line from the variant counters at once (all or nothing).

    The caller holds the variants' share lock (`lock_variants`) in an open transaction."""
    keys: list[str] = []
    args: list[Any] = [_epoch(expires_at)]
    for line in lines:
        counter = variant_key(line.variant_id)
        keys += [counter, holds_key(counter)]
        args += [line.reservation_id, line.quantity, str(line.level_version)]
    return _outcome(scripts(redis).reserve(keys=keys, args=args))


def buy_from_pins(
    redis: Redis,
    lines: Sequence[PinLine],
    *,
    buyer: str,
    expires_at: datetime,
    mark: str,
    token: str,
    skip_mark: bool = False,
) -> Outcome:
    """One Lua call: every pin on sale, price as stated, the buyer's limit and the allocation, then take and
    set the idempotency `mark` to `token`. `replay` when the mark exists (an order was made, or is being
    made, with the key) unless `skip_mark`."""
    keys: list[str] = []
    args: list[Any] = [
        buyer,
        _epoch(expires_at),
        int(datetime.now(UTC).timestamp()),
        "1" if skip_mark else "0",
        token,
        IDEMPOTENCY_MARK_SECONDS,
    ]
    for line in lines:
        counter = pin_key(line.pin_id)
        keys += [counter, holds_key(counter), buyers_key(counter)]
        args += [line.reservation_id, line.quantity, str(line.unit_price_minor)]
    keys.append(mark)
    return _outcome(scripts(redis).pin_buy(keys=keys, args=args))


def same_generations(redis: Redis, counters: Mapping[str, str]) -> bool:
    """Under the lock: do the counters still have the generations the reservation was made against?"""
    return bool(scripts(redis).check(keys=list(counters), args=list(counters.values())))


def claim_mark(redis: Redis, key: str, token: str) -> bool:
    """Take the idempotency mark of a key (False when another request holds it or an order was made)."""
    return bool(redis.set(key, token, nx=True, ex=IDEMPOTENCY_MARK_SECONDS))


def drop_mark(redis: Redis, key: str, token: str) -> None:
    """Let the key go after a request that made no order (only if this request holds the mark)."""
    try:
        scripts(redis).drop_mark(keys=[key], args=[token])
    except Exception:
        logger.exception("idempotency mark not dropped; it expires", extra={"mark": key})


@dataclass(frozen=True, slots=True)
class Hold:
    """A hold to give back to a counter in Redis (after the database change committed)."""

    counter: str
    reservation_id: str


def release_in_redis(redis: Redis, holds: Iterable[Hold]) -> int:
    """Give each hold's units back to its counter, once; returns how many holds were given back."""
    release = scripts(redis).release
    given = 0
    for hold in holds:
        try:
            given += int(
                release(
                    keys=[hold.counter, holds_key(hold.counter), buyers_key(hold.counter)],
                    args=[hold.reservation_id],
                )
            )
        except Exception:
            logger.exception(
                "hold not given back in Redis; the next rebuild counts it from the database",
                extra={"counter": hold.counter, "reservation_id": hold.reservation_id},
            )
    return given


def counter_holds(lines: Iterable[VariantLine]) -> list[Hold]:
    return [Hold(variant_key(line.variant_id), line.reservation_id) for line in lines]


def pin_holds(lines: Iterable[PinLine]) -> list[Hold]:
    return [Hold(pin_key(line.pin_id), line.reservation_id) for line in lines]


# --- the database side ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockRow:
    """A variant as checkout needs it, read under the share lock."""

    variant_id: int
    merchant_id: int
    platform_client_id: int | None
    merchant_status: str
    status: str
    price_minor: int
    currency: str
    tracked: bool
    level_version: int
    takes_orders: bool = True
    """The merchant's store accepts orders pushed to it (its adapter declares ORDER_PUSH)."""


def lock_variants(session: Session, variant_ids: Collection[int]) -> dict[int, StockRow]:
    """Read the variants (with their merchant and home-location level version) holding their share lock, so
    no counter of theirs is rebuilt before this transaction ends. Variants that do not exist are absent."""
    if not variant_ids:
        return {}
    ids = sorted(set(variant_ids))
    variants = session.execute(
        select(
            Variant.id,
            Variant.merchant_id,
            Variant.status,
            Variant.price_minor,
            Variant.currency,
            Variant.inventory_tracked,
        )
        .where(Variant.id.in_(ids))
        .order_by(Variant.id)
        .with_for_update(read=True, key_share=True)
    ).all()
    if not variants:
        return {}
    merchants = {
        row.id: row
        for row in session.execute(
            select(
                Merchant.id,
                Merchant.platform_client_id,
                Merchant.status,
                Merchant.location_ref,
                Merchant.kind,
                Merchant.config,
            ).where(Merchant.id.in_({v.merchant_id for v in variants}))
        )
    }
    orderable = {mid: registry.takes_orders(row.kind, row.config or {}) for mid, row in merchants.items()}
    levels = {
        (vid, loc): version
        for vid, loc, version in session.execute(
            select(InventoryLevel.variant_id, InventoryLevel.location_ref, InventoryLevel.version).where(
                InventoryLevel.variant_id.in_(ids)
            )
        )
    }
    out: dict[int, StockRow] = {}
    for v in variants:
        merchant = merchants[v.merchant_id]
        home = merchant.location_ref or DEFAULT_LOCATION
        out[v.id] = StockRow(
            variant_id=v.id,
            merchant_id=v.merchant_id,
            platform_client_id=merchant.platform_client_id,
            merchant_status=merchant.status,
            status=v.status,
            price_minor=v.price_minor,
            currency=v.currency,
            tracked=bool(v.inventory_tracked),
            level_version=levels.get((v.id, home), 0),
            takes_orders=orderable[v.merchant_id],
        )
    return out


@dataclass
class VariantState:
    """A variant counter as the database says it should be."""

    available: int
    buffer: int
    level_version: int
    held: int = 0
    holds: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return self.available - self.held - self.buffer


def _home_level(session: Session, variant_id: int, merchant: Merchant) -> InventoryLevel | None:
    return session.scalar(
        select(InventoryLevel).where(
            InventoryLevel.variant_id == variant_id,
            InventoryLevel.location_ref == (merchant.location_ref or DEFAULT_LOCATION),
        )
    )


def variant_state(session: Session, variant: Variant, merchant: Merchant) -> VariantState:
    """Sellable stock of a tracked variant from the database: store level minus holds minus buffer."""
    level = _home_level(session, variant.id, merchant)
    state = VariantState(
        available=level.available if level is not None else 0,
        buffer=merchant.inventory_buffer,
        level_version=level.version if level is not None else 0,
    )
    rows = session.execute(
        levels.holding_rows(
            select(Reservation.id, Reservation.quantity, Reservation.state).where(
                Reservation.variant_id == variant.id
            )
        )
    ).all()
    for r in rows:
        state.held += r.quantity
        if r.state == ACTIVE:
            state.holds[r.id] = r.quantity
    return state


def held_by_variant(session: Session, variant_ids: Collection[int]) -> dict[int, int]:
    """Units every hold keeps out of each variant's sellable stock (`levels.reserved_by_variant`, the one
    definition), with a 0 for each variant without holds."""
    held = levels.reserved_by_variant(session, variant_ids)
    return {vid: held.get(vid, 0) for vid in sorted(set(variant_ids))}


def _set_counter(
    redis: Redis,
    counter: str,
    fields: Mapping[str, Any],
    holds: Mapping[str, str],
    buyers: Mapping[str, int],
    *,
    only_missing: bool,
) -> bool:
    args: list[Any] = ["1" if only_missing else "0"]
    for mapping in (fields, holds, buyers):
        args.append(len(mapping))
        for name, value in mapping.items():
            args += [name, value]
    return bool(scripts(redis).set(keys=[counter, holds_key(counter), buyers_key(counter)], args=args))


def rebuild_variant(rt: runtime.Runtime, variant_id: int, *, only_missing: bool = True) -> bool:
    """Write the variant counter from the database under the variant's exclusive lock; with `only_missing`,
    keep a counter another rebuilder wrote first. Returns whether it wrote. Untracked variants have none."""
    with rt.db.session() as session:
        variant = session.scalar(select(Variant).where(Variant.id == variant_id).with_for_update())
        if variant is None:
            return False
        counter = variant_key(variant_id)
        if not variant.inventory_tracked:
            rt.redis.delete(counter, holds_key(counter), buyers_key(counter))
            return False
        if only_missing and rt.redis.exists(counter):
            return False
        merchant = session.get(Merchant, variant.merchant_id)
        assert merchant is not None
        state = variant_state(session, variant, merchant)
        holds = {rid: f"{q}||" for rid, q in state.holds.items()}
        fields = {"n": state.remaining, "gen": _new_gen(), "lv": state.level_version}
        wrote = _set_counter(rt.redis, counter, fields, holds, {}, only_missing=only_missing)
    if wrote:
        logger.info(
            "variant counter rebuilt",
            extra={
                "variant_id": variant_id,
                "remaining": state.remaining,
                "level_version": state.level_version,
            },
        )
    return wrote


@dataclass(frozen=True, slots=True)
class PinState:
    remaining: int
    on_sale: bool
    holds: dict[str, str]
    buyers: dict[str, int]


def pin_state(session: Session, pin: LivePin, live: LiveSession, allocation: Reservation | None) -> PinState:
    """A pin counter as the database says it should be."""
    remaining = allocation.quantity if allocation is not None and allocation.state == ACTIVE else 0
    on_sale = pin.status == "active" and live.status == "live" and remaining >= 0 and allocation is not None
    holds: dict[str, str] = {}
    buyers: dict[str, int] = {}
    rows = session.execute(
        select(
            Reservation.id,
            Reservation.quantity,
            Reservation.state,
            Reservation.buyer_ref,
            Reservation.expires_at,
        ).where(
            Reservation.live_pin_id == pin.id,
            Reservation.order_id.is_not(None),
            Reservation.state.in_((ACTIVE, CONFIRMED)),
        )
    ).all()
    for r in rows:
        buyer = buyer_key(r.buyer_ref) if r.buyer_ref else ""  # holds written before keys were normalized
        if buyer:
            buyers[buyer] = buyers.get(buyer, 0) + r.quantity
        if r.state == ACTIVE:
            holds[r.id] = f"{r.quantity}|{_epoch(r.expires_at)}|{buyer}"
    return PinState(remaining, on_sale, holds, buyers)


def rebuild_pin(rt: runtime.Runtime, pin_id: int, *, only_missing: bool = True) -> bool:
    """Write the pin counter (allocation left, price, limit, buyers, holds) from the database under the lock
    of the pin's allocation row, and the idempotency marks of the session's orders."""
    with rt.db.session() as session:
        allocation = session.scalar(
            select(Reservation).where(Reservation.id == allocation_id(pin_id)).with_for_update()
        )
        counter = pin_key(pin_id)
        if only_missing and rt.redis.exists(counter):
            return False
        pin = session.get(LivePin, pin_id)
        if pin is None:
            rt.redis.delete(counter, holds_key(counter), buyers_key(counter))
            return False
        live = session.get(LiveSession, pin.session_id)
        assert live is not None
        state = pin_state(session, pin, live, allocation)
        fields = {
            "n": state.remaining,
            "gen": _new_gen(),
            "act": "1" if state.on_sale else "0",
            "price": str(pin.flash_price_minor),
            "cur": pin.currency,
            "lim": pin.per_buyer_limit or 0,
            "until": _epoch(pin.countdown_ends_at),
        }
        marks = session.execute(
            select(Order.platform_client_id, Order.idempotency_key, Order.request_hash).where(
                Order.live_session_id == pin.session_id, Order.platform_client_id.is_not(None)
            )
        ).all()
        wrote = _set_counter(rt.redis, counter, fields, state.holds, state.buyers, only_missing=only_missing)
        if wrote and marks:
            pipe = rt.redis.pipeline(transaction=False)
            for client_id, key, request_hash in marks:
                if client_id is None:
                    continue
                pipe.set(idempotency_mark(client_id, key), request_hash, ex=IDEMPOTENCY_MARK_SECONDS)
            pipe.execute()
    if wrote:
        logger.info(
            "pin counter rebuilt",
            extra={"pin_id": pin_id, "remaining": state.remaining, "on_sale": state.on_sale},
        )
    return wrote


def pin_remaining(redis: Redis, pin_ids: Collection[int]) -> dict[int, int | None]:
    """Live remaining allocation per pin from Redis (None where the counter is missing)."""
    if not pin_ids:
        return {}
    ordered = list(pin_ids)
    pipe = redis.pipeline(transaction=False)
    for pin_id in ordered:
        pipe.hget(pin_key(pin_id), "n")
    return {
        pin_id: int(value) if value is not None else None
        for pin_id, value in zip(ordered, pipe.execute(), strict=True)
    }


# --- releasing ------------------------------------------------------------------------------------------------


def release_rows(session: Session, rows: Sequence[Reservation], state: str) -> list[Hold]:
    """End the given holds (`released` or `expired`) in the caller's transaction and return what to give back
    in Redis after it commits. An order hold of a pin still selling goes back to the pin's allocation."""
    now = datetime.now(UTC)
    holds: list[Hold] = []
    pins: dict[int, int] = {}
    for row in rows:
        if row.order_id is not None and row.live_pin_id is not None:
            pins[row.live_pin_id] = pins.get(row.live_pin_id, 0) + row.quantity
    selling: set[int] = set()
    for pin_id in sorted(pins):
        back = session.execute(
            update(Reservation)
            .where(Reservation.id == allocation_id(pin_id), Reservation.state == ACTIVE)
            .values(quantity=Reservation.quantity + pins[pin_id])
        ).rowcount  # type: ignore[attr-defined]
        if back:
            selling.add(pin_id)
    if selling:
        _restocked(session, selling, {row.live_pin_id: row.merchant_id for row in rows if row.live_pin_id})
    for row in rows:
        if row.state == ACTIVE:
            row.state = state
        row.settled_at = now
        if row.order_id is not None and row.live_pin_id in selling:
            holds.append(Hold(pin_key(row.live_pin_id), row.id))
        else:
            holds.append(Hold(variant_key(row.variant_id), row.id))
    session.flush()
    return holds


def _restocked(session: Session, pin_ids: Collection[int], merchants: Mapping[int | None, int]) -> None:
    """A pin given units back may cross its thresholds upwards: re-arm its alerts, tell the platform."""
    for pin_id in sorted(pin_ids):
        pin = session.get(LivePin, pin_id)
        left = session.scalar(select(Reservation.quantity).where(Reservation.id == allocation_id(pin_id)))
        if pin is None or left is None:
            continue
        changed = False
        if pin.sold_out_notified and left > 0:
            pin.sold_out_notified, changed = False, True
        if pin.low_stock_notified and left > (pin.low_stock_threshold or 0):
            pin.low_stock_notified, changed = False, True
        if changed:
            outbox.publish(
                session,
                [
                    outbox.DomainEvent(
                        LIVE_PIN_UPDATED,
                        merchants.get(pin_id),
                        {
                            "id": pin.id,
                            "live_session_id": pin.session_id,
                            "variant_id": pin.variant_id,
                            "remaining": int(left),
                            "status": pin.status,
                            "change": "restocked",
                        },
                    )
                ],
            )


def release_order(session: Session, order_id: int, state: str = RELEASED) -> list[Hold]:
    """End every active hold of an order (cancellation); returns the holds to give back after commit."""
    rows = list(
        session.scalars(
            select(Reservation)
            .where(Reservation.order_id == order_id, Reservation.state == ACTIVE)
            .order_by(Reservation.id)
            .with_for_update()
        )
    )
    return release_rows(session, rows, state)


# --- the periodic job -------------------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    expired: int = 0
    given_back: int = 0
    settled: int = 0
    pins_ended: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "expired": self.expired,
            "given_back": self.given_back,
            "settled": self.settled,
            "pins_ended": self.pins_ended,
        }


def _expire(rt: runtime.Runtime, now: datetime) -> int:
    """Release overdue holds, except those of an order whose push is still being tried: its buyer has paid
    and the store may yet take it, so its units stay held until it is confirmed, rejected or given up on
    (the sweeper's last attempt); releasing them sooner would sell them twice."""
    pushing = (
        select(Order.id)
        .where(
            Order.id == Reservation.order_id,
            Order.status == ACCEPTED_ORDER,
            Order.push_attempts < push.MAX_SWEPT_ATTEMPTS,
        )
        .exists()
    )
    with rt.db.session() as session:
        rows = list(
            session.scalars(
                select(Reservation)
                .where(Reservation.state == ACTIVE, Reservation.expires_at < now, ~pushing)
                .order_by(Reservation.id)
                .limit(RECONCILE_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        holds = release_rows(session, rows, EXPIRED)
    release_in_redis(rt.redis, holds)
    if rows:
        logger.info("holds expired", extra={"count": len(rows)})
    return len(rows)


def _give_back(rt: runtime.Runtime) -> int:
    """Holds released elsewhere without their counter (the push job's rejection): give them back now."""
    with rt.db.session() as session:
        rows = list(
            session.scalars(
                select(Reservation)
                .where(Reservation.state.in_((RELEASED, EXPIRED)), Reservation.settled_at.is_(None))
                .order_by(Reservation.id)
                .limit(RECONCILE_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        holds = release_rows(session, rows, RELEASED)
    release_in_redis(rt.redis, holds)
    return len(rows)


def _settle_confirmed(rt: runtime.Runtime, now: datetime) -> int:
    """Confirmed holds whose store level caught up stop counting for good (the rows stop being read)."""
    settled = 0
    with rt.db.session() as session:
        rows = session.execute(
            select(Reservation, Merchant)
            .join(Merchant, Merchant.id == Reservation.merchant_id)
            .where(Reservation.state == CONFIRMED, Reservation.settled_at.is_(None))
            .order_by(Reservation.id)
            .limit(RECONCILE_BATCH)
        ).all()
        for row, merchant in rows:
            level = _home_level(session, row.variant_id, merchant)
            if levels.caught_up(level, row) or row.updated_at < now - SETTLE_AFTER:
                row.settled_at = now
                settled += 1
    return settled


def reconcile(rt: runtime.Runtime | None = None) -> dict[str, int]:
    """Periodic: expire overdue holds, give back holds released without their counter, settle confirmed holds
    the store level reflects, end pins whose countdown is over. Idempotent; safe to run concurrently."""
    rt = rt or runtime.current()
    now = datetime.now(UTC)
    report = ReconcileReport()
    report.expired = _expire(rt, now)
    report.given_back = _give_back(rt)
    report.settled = _settle_confirmed(rt, now)
    from connector.live import sessions

    report.pins_ended = sessions.end_expired_pins(rt, now)
    if any(report.as_dict().values()):
        logger.info("reservations reconciled", extra=report.as_dict())
    return report.as_dict()
