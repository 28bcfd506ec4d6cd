"""Waking the drain jobs: merchants are spread over SHARDS shards, at most one drain job queued per shard.

A drain job takes the pending deliveries of every merchant of its shard (merchant id modulo SHARDS), so
the jobs, locks and pauses intake costs grow with the number of shards, not with the number of merchants:
a burst spread over a thousand merchants costs at most SHARDS jobs, as a burst for one merchant costs one.
The receiver calls `wake` after storing a delivery. A short-lived flag per shard (`SET NX`) means "a drain
job for this shard is queued or draining"; only the request that sets it enqueues. The job keeps the flag
while it drains, clears it once caught up and then reads once more, so a delivery stored after its last read
wakes a new job. The flag expires, and the sweeper signals merchants with old pending deliveries, so a lost
job (Redis flushed, worker killed) delays processing but never strands it.

Every process must use the same SHARDS: a merchant's deliveries are applied in order because every drain of
that merchant holds its shard's lock.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, Final

from redis import Redis
from rq import Queue, Retry

from connector.infra.queue import EVENTS

logger = logging.getLogger(__name__)

JOB_FUNC: Final = "webhooks.inbound.drain.drain"
DEFAULT_QUEUE: Final = EVENTS
FLAG_TTL: Final = 60
"""Seconds a wake-up flag lives by default: the longest a lost job can hold back a merchant's new deliveries
(callers with settings pass WORKER_LOCK_SECONDS)."""
JOB_TIMEOUT: Final = 300
SHARDS: Final = 2
"""How many drain jobs may run at once across all merchants (each drains the merchants of one shard)."""


def shard(merchant_id: int) -> int:
    """The shard whose drain job applies `merchant_id`'s deliveries."""
    return merchant_id % SHARDS


def flag_key(merchant_id: int) -> str:
    """The wake-up flag of `merchant_id`'s shard (shared by every merchant of that shard)."""
    return f"storelink:inbound:wake:shard:{shard(merchant_id)}"


def _job_kwargs() -> dict[str, Any]:
    return {
        "job_timeout": JOB_TIMEOUT,
        "result_ttl": 300,
        "failure_ttl": 7 * 24 * 3600,
        "retry": Retry(max=3, interval=[2, 10, 30]),
    }


def signal(
    redis: Redis,
    merchant_id: int,
    *,
    queue: str = DEFAULT_QUEUE,
    delay: float | None = None,
    ttl: int = FLAG_TTL,
) -> bool:
    """Make sure a drain job for `merchant_id`'s shard is queued; returns True when this call enqueued it.
    The flag lives `ttl` seconds unless cleared (WORKER_LOCK_SECONDS where the caller has settings)."""
    if not redis.set(flag_key(merchant_id), b"1", nx=True, ex=ttl):
        return False
    target = Queue(queue, connection=redis)
    try:
        if delay:
            target.enqueue_in(timedelta(seconds=delay), JOB_FUNC, merchant_id, queue, **_job_kwargs())
        else:
            target.enqueue(JOB_FUNC, merchant_id, queue, **_job_kwargs())
    except Exception:
        redis.delete(flag_key(merchant_id))
        raise
    return True


QUIET: Final = 0.02
"""Seconds after seeing a shard's flag set during which a web process does not look again (`wake`)."""
SETTLE: Final = 0.025
"""Seconds a drain job waits between clearing its flag and its last read; more than QUIET, so that read sees
every delivery whose wake-up was skipped because the flag had been seen set."""

_seen: dict[tuple[int, int], float] = {}
"""When this process last saw a flag set, by (Redis connection pool, shard)."""


def wake(redis: Redis, merchant_id: int, *, queue: str = DEFAULT_QUEUE, ttl: int = FLAG_TTL) -> bool:
    """`signal` for the receiver, which calls it after every stored delivery: a shard whose flag this
    process saw set less than QUIET seconds ago is not asked about again (whichever of its merchants).

    Why that loses nothing: the flag was set (seen) at t0 and the delivery stored at t1 < t0 + QUIET. A drain
    that clears the flag after t0 reads once more no sooner than SETTLE later, after t1, so it sees the
    delivery; a flag cleared before t0 and seen set at t0 belongs to a drain that has yet to clear it.
    """
    now = time.monotonic()
    key = (id(redis.connection_pool), shard(merchant_id))
    seen = _seen.get(key)
    if seen is not None and now - seen < QUIET:
        return False
    enqueued = signal(redis, merchant_id, queue=queue, ttl=ttl)
    if len(_seen) > 100_000:
        _seen.clear()
    _seen[key] = now  # set by this call or found set: either way a drain is due to read after now
    return enqueued


def clear(redis: Redis, merchant_id: int) -> None:
    """Called by the drain job before its last read: deliveries stored from now on in `merchant_id`'s shard
    wake a new job."""
    redis.delete(flag_key(merchant_id))
