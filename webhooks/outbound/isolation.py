"""Keeps one slow or failing endpoint from holding every worker: a cap on its attempts in flight, and the
routing of its deliveries to the `webhooks` queue, which workers of their own serve.

The cap is a Redis semaphore per endpoint: a sorted set of slot tokens scored by when they were taken. A slot
is given back after the POST; one left by a killed worker lapses with the delivery lease. A delivery that
finds its endpoint at the cap waits a short, jittered, growing delay without an attempt being counted.

An endpoint is slow while the moving average of its attempt durations is at or above a threshold (it stops
being slow once the average falls under half of it, so it does not flap). Slow endpoints' deliveries go to
the `webhooks` queue only while some worker serves that queue; otherwise they stay on their home queue, so
nothing waits for a worker that does not exist. What Redis holds here is a hint, never the record: losing it
sends deliveries to their home queue and forgets the slots in flight.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis

from connector.infra.queue import WEBHOOKS

logger = logging.getLogger(__name__)

SLOW_QUEUE = WEBHOOKS
STATS_TTL = 3600
"""Seconds an endpoint's average lives without a new attempt; then it counts as fast again."""
SERVED_CACHE_SECONDS = 2.0
WAIT_BASE = 1.0
WAIT_MAX = 30.0


@dataclass(frozen=True, slots=True)
class IsolationPolicy:
    """How many attempts one endpoint may have in flight, and from which average duration it is slow."""

    concurrency: int = 4
    slow_after: float = 2.0
    smoothing: float = 0.3
    slow_queue: str = SLOW_QUEUE


DEFAULT_POLICY = IsolationPolicy()


def slots_key(endpoint_id: int) -> str:
    return f"storelink:webhooks:inflight:{endpoint_id}"


def stats_key(endpoint_id: int) -> str:
    return f"storelink:webhooks:endpoint:{endpoint_id}"


# KEYS[1] slots; ARGV: now, lease seconds, cap, tokens. Expired slots (taken more than a lease ago) go first;
# then as many of the tokens as there are free slots, in order. Returns how many it took.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local taken = 0
for i = 4, #ARGV do
  if taken >= free then
    break
  end
  redis.call('ZADD', KEYS[1], now, ARGV[i])
  taken = taken + 1
end
if taken > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000))
end
return taken
"""

# KEYS[1] stats; ARGV: smoothing, threshold ms, ttl, then the durations (ms) in the order they were seen, each
# folded in as `fold` does. Returns 1 when the endpoint is slow after the last.
_OBSERVE = """
local alpha = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local avg = tonumber(redis.call('HGET', KEYS[1], 'avg_ms'))
local slow = 0
if redis.call('HGET', KEYS[1], 'slow') == '1' then
  slow = 1
end
for i = 4, #ARGV do
  local sample = tonumber(ARGV[i])
  if avg then
    avg = alpha * sample + (1 - alpha) * avg
  else
    avg = sample
  end
  local limit = threshold
  if slow == 1 then
    limit = threshold / 2
  end
  if avg >= limit then
    slow = 1
  else
    slow = 0
  end
end
redis.call('HSET', KEYS[1], 'avg_ms', tostring(avg), 'slow', slow)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return slow
"""


def acquire(redis: Redis, endpoint_id: int, *, cap: int, lease: float) -> str | None:
    """Take one of the endpoint's `cap` slots for at most `lease` seconds; the token, or None when full."""
    taken = acquire_many(redis, endpoint_id, 1, cap=cap, lease=lease)
    return taken[0] if taken else None


def acquire_many(redis: Redis, endpoint_id: int, wanted: int, *, cap: int, lease: float) -> list[str]:
    """Take up to `wanted` of the endpoint's `cap` slots, as many as are free, in one round trip; their
    tokens (none when the endpoint is full)."""
    tokens = [uuid.uuid4().hex for _ in range(max(wanted, 0))]
    if not tokens:
        return []
    taken = redis.eval(_ACQUIRE, 1, slots_key(endpoint_id), repr(time.time()), repr(lease), cap, *tokens)
    return tokens[: int(taken or 0)]


def release(redis: Redis, endpoint_id: int, *tokens: str) -> None:
    """Give the slots back (one round trip); never raises (a slot not given back lapses with the lease)."""
    if not tokens:
        return
    try:
        redis.zrem(slots_key(endpoint_id), *tokens)
    except Exception:
        logger.warning("endpoint slot not released", extra={"endpoint_id": endpoint_id}, exc_info=True)


def in_flight(redis: Redis, endpoint_id: int) -> int:
    return int(redis.zcard(slots_key(endpoint_id)))


def observe(
    redis: Redis, endpoint_id: int, duration_ms: int, policy: IsolationPolicy = DEFAULT_POLICY
) -> bool:
    """Fold one attempt's duration into the endpoint's average; returns whether the endpoint is now slow."""
    return observe_many(redis, endpoint_id, [duration_ms], policy)


def observe_many(
    redis: Redis, endpoint_id: int, durations_ms: Iterable[int], policy: IsolationPolicy = DEFAULT_POLICY
) -> bool:
    """Fold attempts' durations, in order, into the endpoint's average in one call; whether it is slow now."""
    slow = redis.eval(
        _OBSERVE,
        1,
        stats_key(endpoint_id),
        repr(policy.smoothing),
        repr(policy.slow_after * 1000),
        STATS_TTL,
        *(max(int(d), 0) for d in durations_ms),
    )
    return bool(slow)


def fold(average: float | None, slow: bool, duration_ms: int, policy: IsolationPolicy) -> tuple[float, bool]:
    """One duration folded into (average, slow) as `observe` folds it in Redis: the moving average, slow at
    or above the threshold and, once slow, until it falls under half of it."""
    sample = max(int(duration_ms), 0)
    folded = sample if average is None else policy.smoothing * sample + (1 - policy.smoothing) * average
    limit = policy.slow_after * 1000 / (2 if slow else 1)
    return folded, folded >= limit


class Observer:
    """A round's attempts to one endpoint: each duration folded at once into a copy of the endpoint's average
    read when the round began (so the round can stop at the answer that makes the endpoint slow), and all of
    them written to Redis in one call at its end (`observe_many`). Thread-safe."""

    def __init__(self, redis: Redis, endpoint_id: int, policy: IsolationPolicy) -> None:
        self.endpoint_id = endpoint_id
        self.policy = policy
        self.durations: list[int] = []
        self._lock = threading.Lock()
        self._average: float | None = None
        self._slow = False
        try:
            average, flag = redis.hmget(stats_key(endpoint_id), ["avg_ms", "slow"])
        except Exception:  # a hint only: the round starts from a fast endpoint with no average
            logger.warning("endpoint timing not read", extra={"endpoint_id": endpoint_id}, exc_info=True)
            return
        self._average = float(average) if average is not None else None
        self._slow = flag in (b"1", "1")

    def add(self, duration_ms: int) -> bool:
        """Fold one answer's duration; whether the endpoint is slow now."""
        with self._lock:
            self.durations.append(duration_ms)
            self._average, self._slow = fold(self._average, self._slow, duration_ms, self.policy)
            return self._slow


def slow_endpoints(redis: Redis, endpoint_ids: Iterable[int]) -> set[int]:
    """Which of these endpoints are slow now."""
    ids = sorted(set(endpoint_ids))
    if not ids:
        return set()
    with redis.pipeline(transaction=False) as pipe:
        for endpoint_id in ids:
            pipe.hget(stats_key(endpoint_id), "slow")
        flags = pipe.execute()
    return {endpoint_id for endpoint_id, flag in zip(ids, flags, strict=True) if flag in (b"1", "1")}


_served: dict[tuple[object, ...], tuple[float, bool]] = {}


def served(redis: Redis, queue: str) -> bool:
    """Whether a live worker listens on `queue` (RQ's worker registrations; cached for a moment)."""
    kwargs = redis.connection_pool.connection_kwargs
    cache_key = (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db"), queue)
    now = time.monotonic()
    cached = _served.get(cache_key)
    if cached is not None and cached[0] > now:
        return cached[1]
    members = list(redis.smembers(f"rq:workers:{queue}"))
    alive = False
    if members:
        with redis.pipeline(transaction=False) as pipe:
            for key in members:
                pipe.exists(key)
            alive = any(pipe.execute())
    _served[cache_key] = (now + SERVED_CACHE_SECONDS, alive)
    return alive


def forget() -> None:
    """Drop cached worker registrations (tests that start and stop workers)."""
    _served.clear()


def route(redis: Redis, home: str, *, slow: bool, policy: IsolationPolicy = DEFAULT_POLICY) -> str:
    """The queue for a delivery whose home queue is `home`: the slow queue for a slow endpoint when served."""
    if not slow or home == policy.slow_queue:
        return home
    return policy.slow_queue if served(redis, policy.slow_queue) else home


def routes(
    redis: Redis, home: str, endpoint_ids: Iterable[int | None], policy: IsolationPolicy = DEFAULT_POLICY
) -> dict[int | None, str]:
    """The queue for each endpoint's deliveries; on any Redis error, the home queue for all."""
    ids = set(endpoint_ids)
    try:
        slow = slow_endpoints(redis, (i for i in ids if i is not None))
        return {i: route(redis, home, slow=i in slow, policy=policy) for i in ids}
    except Exception:
        logger.warning(
            "delivery routing unavailable; using the home queue", extra={"queue": home}, exc_info=True
        )
        return dict.fromkeys(ids, home)


def wait_delay(waits: int, rng: random.Random | None = None) -> float:
    """Seconds a delivery that found its endpoint full waits: 1 s, doubling per wait up to 30 s, ±25%."""
    base = min(WAIT_BASE * 2 ** min(max(waits, 0), 10), WAIT_MAX)
    return max(1.0, base * (rng or random).uniform(0.75, 1.25))
