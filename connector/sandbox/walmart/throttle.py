"""Walmart's per-endpoint throttling, emulated: one token bucket per endpoint, refilled evenly, reported on
every response as `X-Current-Token-Count` (whole tokens left) and `X-Next-Replenishment-Time` (epoch
milliseconds at which the next token arrives); an empty bucket answers 429 with `Retry-After` (seconds)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`capacity` calls, refilled evenly over `per_seconds` (e.g. RateLimit(300, 60) is 300 per minute)."""

    capacity: int
    per_seconds: float = 60.0

    @property
    def rate(self) -> float:
        return self.capacity / self.per_seconds


# Second-hand per-endpoint numbers (research §6); everything else gets DEFAULT_LIMIT.
DEFAULT_LIMITS: dict[str, RateLimit] = {
    "token": RateLimit(30),
    "get_items": RateLimit(300),
    "get_item": RateLimit(300),
    "get_inventory": RateLimit(200),
    "put_inventory": RateLimit(200),
    "get_inventories": RateLimit(200),
    "put_inventories": RateLimit(200),
    "list_inventories": RateLimit(200),
    "get_orders": RateLimit(5000),
    "get_order": RateLimit(5000),
    "get_released_orders": RateLimit(5000),
    "acknowledge_order": RateLimit(60),
    "ship_order": RateLimit(60),
    "cancel_order": RateLimit(60),
    "get_feed": RateLimit(5000),
    "post_feed": RateLimit(5000),
}
DEFAULT_LIMIT = RateLimit(600)


@dataclass(frozen=True, slots=True)
class Grant:
    """The outcome of taking one token: allowed or not, the headers' values, and the wait when refused."""

    allowed: bool
    remaining: int
    next_replenishment_ms: int
    retry_after: float


class TokenBucket:
    def __init__(self, limit: RateLimit, clock: Callable[[], float]):
        self.limit = limit
        self.clock = clock
        self.tokens = float(limit.capacity)
        self.updated = clock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.capacity), self.tokens + elapsed * self.limit.rate)
        self.updated = now

    def take(self) -> Grant:
        now = self.clock()
        self._refill(now)
        allowed = self.tokens >= 1.0
        if allowed:
            self.tokens -= 1.0
        return self._grant(now, allowed)

    def peek(self) -> Grant:
        now = self.clock()
        self._refill(now)
        return self._grant(now, True)

    def _grant(self, now: float, allowed: bool) -> Grant:
        fraction = self.tokens - math.floor(self.tokens)
        until_next = (
            (1.0 - fraction) / self.limit.rate if self.tokens < self.limit.capacity else 1.0 / self.limit.rate
        )
        until_one = max(0.0, (1.0 - self.tokens) / self.limit.rate)
        return Grant(allowed, math.floor(self.tokens), int((now + until_next) * 1000), until_one)


class Throttle:
    """The buckets of every endpoint; limits can be changed (and buckets refilled) at any time."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit] | None = None,
        *,
        default: RateLimit = DEFAULT_LIMIT,
        clock: Callable[[], float] = time.time,
    ):
        self.clock = clock
        self.default = default
        self.limits: dict[str, RateLimit] = {**DEFAULT_LIMITS, **(limits or {})}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def configure(self, endpoint: str, limit: RateLimit) -> None:
        """Set one endpoint's limit and start it with a full bucket."""
        with self._lock:
            self.limits[endpoint] = limit
            self._buckets.pop(endpoint, None)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _bucket(self, endpoint: str) -> TokenBucket:
        bucket = self._buckets.get(endpoint)
        if bucket is None:
            bucket = TokenBucket(self.limits.get(endpoint, self.default), self.clock)
            self._buckets[endpoint] = bucket
        return bucket

    def take(self, endpoint: str) -> Grant:
        with self._lock:
            return self._bucket(endpoint).take()

    def peek(self, endpoint: str) -> Grant:
        with self._lock:
            return self._bucket(endpoint).peek()
