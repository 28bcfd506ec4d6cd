"""A store's request budget kept in Redis and shared by every worker that talks to the same store.

A store may refill a per-app, per-store bucket of query-cost points at a fixed rate (e.g. Shopify's Admin
API); workers that each guess what the others spend either overdraw it (THROTTLED answers) or leave points unspent. Here every request
first reserves its cost in one ledger (a Lua script on Redis's clock: refill, subtract, and answer how long
to wait when the bucket is in debt), so reservations queue in order; after the answer the unused part of the
reservation is given back and the ledger is lowered to what the store reported, less the reservations still
in flight, when that is less. Nothing in it matters beyond a few minutes: it expires, and a lost ledger is
learned again from the next answer.

A reservation is in flight from its `take` until its request reports: the store has not charged it yet, so
neither the store's figures nor its maximum know of it. The ledger keeps these reservations beside the bucket
and counts them against both: lowered to the store's figure alone, it would hand their points out a second
time, and refilled up to the maximum alone, it would count refill that a full store never gains. A
reservation whose request never reports (its worker died, or the request failed without an answer) stops
counting once its wait is over and IN_FLIGHT_SECONDS more have passed. A request that has reached the store
but not yet reported is counted twice meanwhile (in the store's figure and in flight): the error leans to
waiting, never to overdrawing.

While nobody knows the bucket (before the first answer, or after the ledger expired), one request at a time
goes out to learn it (the probe) and the others wait for its answer instead of all meeting an empty bucket
at once; a probe that never reports (its worker died) hands over to the next after PROBE_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

TTL_SECONDS: Final = 600
PROBE_SECONDS: Final = 5.0
"""How long the one request learning an unknown bucket has before another may go instead."""
PROBE_POLL_SECONDS: Final = 0.05
"""How often a request waiting for the probe's answer looks at the ledger again."""
IN_FLIGHT_SECONDS: Final = 10.0
"""How long after its wait is over a reservation still counts as in flight when its request never reports."""

_SCRIPT: Final = """
local key, probe, flight, op = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- Reservations in flight: members '<seq>:<cost>', scored by when they stop counting.
redis.call('ZREMRANGEBYSCORE', flight, '-inf', now)
local entries = redis.call('ZRANGE', flight, 0, -1)
local function cost_of(member) return tonumber(string.match(member, ':(.*)$')) end
local in_flight = 0
for _, member in ipairs(entries) do in_flight = in_flight + cost_of(member) end
local b = redis.call('HMGET', key, 'available', 'at', 'max', 'rate')
local available, at, max, rate = tonumber(b[1]), tonumber(b[2]), tonumber(b[3]), tonumber(b[4])
if available ~= nil then
  available = math.min(max - in_flight, available + rate * math.max(0, now - at))
end
if op == 'take' then
  if available == nil or rate <= 0 then
    if redis.call('SET', probe, '1', 'NX', 'PX', ARGV[4]) then return nil end
    return 'probe'
  end
  available = available - tonumber(ARGV[2])
  local wait = 0
  if available < 0 then wait = -available / rate end
  local seq = redis.call('HINCRBY', key, 'seq', 1)
  redis.call('HSET', key, 'available', tostring(available), 'at', tostring(now))
  redis.call('EXPIRE', key, ARGV[3])
  redis.call('ZADD', flight, tostring(now + wait + tonumber(ARGV[5])), seq .. ':' .. ARGV[2])
  redis.call('EXPIRE', flight, ARGV[3])
  if available >= 0 then return '0' end
  return tostring(wait)
end
local refund, new_max, new_rate, reported = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local reserved = tonumber(ARGV[7])
if reserved > 0 then
  for _, member in ipairs(entries) do  -- the request's own reservation (any of the same cost: their sum is the same)
    if cost_of(member) == reserved then
      redis.call('ZREM', flight, member)
      in_flight = in_flight - reserved
      break
    end
  end
end
if available == nil then
  available = reported - in_flight
else
  available = math.min(new_max - in_flight, available + refund, reported - in_flight)
end
redis.call('HSET', key, 'available', tostring(available), 'at', tostring(now), 'max', tostring(new_max), 'rate', tostring(new_rate))
redis.call('EXPIRE', key, ARGV[6])
redis.call('DEL', probe)
return tostring(available)
"""


class RedisRateLedger:
    """The `connector.domain.ports.RateLedger` of one store (`name`, e.g. `shopify:acme.myshopify.com`)."""

    def __init__(
        self, connection: Callable[[], Redis], name: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._connection = connection
        self.key = f"storelink:rate:{name}"
        self._probe_key = f"{self.key}:probe"
        self._flight_key = f"{self.key}:flight"
        self._sleep = sleep
        self._script: tuple[Redis, Script] | None = None

    def _run(self, *args: str | float) -> bytes | None:
        redis = self._connection()
        if self._script is None or self._script[0] is not redis:
            self._script = (redis, redis.register_script(_SCRIPT))
        result = self._script[1](keys=[self.key, self._probe_key, self._flight_key], args=list(args))
        return result if isinstance(result, bytes) or result is None else str(result).encode()

    def take(self, cost: float) -> float | None:
        """Reserve `cost` points, in flight until the request reports them (`report(..., reserved=cost)`): the
        seconds to wait before sending (0 when they are there), or None when the bucket is unknown and this
        request is the one to learn it (or Redis is unreachable), having reserved nothing."""
        waiting = False
        while True:
            try:
                answer = self._run("take", cost, TTL_SECONDS, int(PROBE_SECONDS * 1000), IN_FLIGHT_SECONDS)
            except (RedisError, RuntimeError):  # RuntimeError: this process has no Redis configured
                logger.warning("shared rate ledger unavailable; pacing alone", extra={"ledger": self.key})
                return None
            if answer != b"probe":
                return None if answer is None else float(answer)
            if not waiting:
                logger.debug("waiting for the store's first answer", extra={"ledger": self.key})
                waiting = True
            self._sleep(PROBE_POLL_SECONDS)

    def report(
        self, refund: float, maximum: float, restore_rate: float, available: float, *, reserved: float
    ) -> None:
        """The store's answer to a request that reserved `reserved` points (0 for the probe): its reservation
        is no longer in flight, `refund` points return, and the ledger is lowered to the store's `available`
        less the reservations still in flight when that is less."""
        try:
            self._run("report", refund, maximum, restore_rate, available, TTL_SECONDS, reserved)
        except (RedisError, RuntimeError):
            logger.warning("shared rate ledger not updated", extra={"ledger": self.key})

    def forget(self) -> None:
        """Drop the ledger (it is learned again from the store's next answer)."""
        self._connection().delete(self.key, self._probe_key, self._flight_key)
