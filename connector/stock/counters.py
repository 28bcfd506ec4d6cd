"""Stock counters in Redis: their keys, the Lua scripts that reserve, buy, release and check atomically, and
the idempotency marks of orders.

Two kinds of counter live in Redis, each a hash with the remaining units (`n`) and a generation (`gen`):

- a **variant counter** (`sl:stock:v:<variant>`): sellable units, i.e. the store level at the merchant's
  selling location minus every hold minus the merchant's buffer; `lv` records the level version it was
  computed from, and a reservation against a counter built from another version is refused as stale;
- a **pin counter** (`sl:stock:p:<pin>`): the unsold allocation of a live pin, with its flash price, per-buyer
  limit, whether it is on sale, and the units each buyer holds (`...:b`).

Each counter keeps its holds (`...:h`: reservation id -> "quantity|expires|buyer"), so a release gives units
back once and only for a hold the counter counted. The reserve scripts check and decrement in one step.

A counter is a cache of the reservation rows (`connector.stock.holds`), written whole from the database by
`connector.stock.rebuild` (`set_counter`). This module touches Redis only, never the database.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from redis import Redis
from redis.commands.core import Script

logger = logging.getLogger(__name__)

IDEMPOTENCY_MARK_SECONDS: Final = 7 * 24 * 3600
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


def new_gen() -> str:
    return secrets.token_hex(8)


def epoch(value: datetime | None) -> int:
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
-- KEYS: pin, holds, buyers per line, then the idempotency mark, then (with a key generation in ARGV[7]) the
-- API key generation. ARGV: buyer, expires, now, skip_mark, mark token, mark ttl, expected key generation
-- (or ''), then per line: reservation id, quantity, unit price. 'key' when the key generation is not the one
-- expected (nothing checked or taken). On success the mark is set: a concurrent request with the key waits
-- for this one's answer.
local mark = #KEYS
if ARGV[7] ~= '' then
  mark = #KEYS - 1
  if (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[7] then return {'key', 0, 0} end
end
local lines = (mark - 1) / 3
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[mark]) == 1 then return {'replay', 0, 0} end
local buyer = ARGV[1]
local now = tonumber(ARGV[3])
for i = 1, lines do
  local f = redis.call('HMGET', KEYS[3 * i - 2], 'n', 'act', 'price', 'lim', 'until')
  if not f[1] then return {'missing', i, 0} end
  if f[2] ~= '1' then return {'inactive', i, 0} end
  local untl = tonumber(f[5])
  if untl > 0 and now >= untl then return {'inactive', i, 0} end
  local a = 7 + 3 * (i - 1)
  if f[3] ~= ARGV[a + 3] then return {'price', i, tonumber(f[3])} end
  local q = tonumber(ARGV[a + 2])
  local lim = tonumber(f[4])
  if lim > 0 then
    local had = tonumber(redis.call('HGET', KEYS[3 * i], buyer) or '0')
    if had + q > lim then return {'limit', i, lim - had} end
  end
  if tonumber(f[1]) < q then return {'short', i, tonumber(f[1])} end
end
redis.call('SET', KEYS[mark], ARGV[5], 'EX', tonumber(ARGV[6]))
local out = {'ok', 0, 0}
for i = 1, lines do
  local a = 7 + 3 * (i - 1)
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


@dataclass(slots=True)
class KeyCheck:
    """The API key generation (in Redis at `key`) a cached key lookup was made under, for the purchase script
    to confirm with its decision; `confirmed` once a script found it current."""

    key: str
    generation: int
    confirmed: bool = False


class KeyChangedError(Exception):
    """A purchase script found the API key generation changed since the key's lookup was cached: nothing was
    decided; look the key up again."""


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
    args: list[Any] = [epoch(expires_at)]
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
    key_check: KeyCheck | None = None,
) -> Outcome:
    """One Lua call: every pin on sale, price as stated, the buyer's limit and the allocation, then take and
    set the idempotency `mark` to `token`. `replay` when the mark exists (an order was made, or is being
    made, with the key) unless `skip_mark`. With `key_check`, first the API key generation: `key` (nothing
    done) when it is not the expected one, else the check is marked confirmed."""
    keys: list[str] = []
    args: list[Any] = [
        buyer,
        epoch(expires_at),
        int(datetime.now(UTC).timestamp()),
        "1" if skip_mark else "0",
        token,
        IDEMPOTENCY_MARK_SECONDS,
        str(key_check.generation) if key_check is not None else "",
    ]
    for line in lines:
        counter = pin_key(line.pin_id)
        keys += [counter, holds_key(counter), buyers_key(counter)]
        args += [line.reservation_id, line.quantity, str(line.unit_price_minor)]
    keys.append(mark)
    if key_check is not None:
        keys.append(key_check.key)
    outcome = _outcome(scripts(redis).pin_buy(keys=keys, args=args))
    if key_check is not None and outcome.status != "key":
        key_check.confirmed = True
    return outcome


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


def set_counter(
    redis: Redis,
    counter: str,
    fields: Mapping[str, Any],
    holds: Mapping[str, str],
    buyers: Mapping[str, int],
    *,
    only_missing: bool,
) -> bool:
    """Replace the counter whole (fields, holds, buyers); with `only_missing`, keep one already there."""
    args: list[Any] = ["1" if only_missing else "0"]
    for mapping in (fields, holds, buyers):
        args.append(len(mapping))
        for name, value in mapping.items():
            args += [name, value]
    return bool(scripts(redis).set(keys=[counter, holds_key(counter), buyers_key(counter)], args=args))


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
