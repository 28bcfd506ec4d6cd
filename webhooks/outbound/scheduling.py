"""How delivery jobs reach RQ: after the commit that made them due, now or at a time, with stable job ids.

Job ids are `delivery-<id>-<attempt>` (the attempt the job will make), so the sweeper can ask whether the
job for a pending delivery is still alive. Enqueue failures are logged, never raised: the database is the
record and `delivery.sweep_deliveries` enqueues whatever was lost, through `enqueue_lost`, which also
replaces jobs whose worker was killed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import event
from sqlalchemy.orm import Session

from connector import runtime
from connector.queue import EVENTS, LIVE_STATUSES

logger = logging.getLogger(__name__)

JOB_FUNC = "webhooks.outbound.delivery.deliver"
DEFAULT_QUEUE = EVENTS
JOB_TIMEOUT = 120
_PENDING_KEY = "webhooks.outbound.pending"
_HOOKED_KEY = "webhooks.outbound.hooked"

RedisProvider = Callable[[], Redis]


class Due(NamedTuple):
    """A delivery's next attempt to enqueue."""

    delivery_id: int
    attempt: int


def _default_redis() -> Redis:
    return runtime.current().redis


_redis_provider: RedisProvider = _default_redis


def configure(redis_provider: RedisProvider | None = None) -> None:
    """Where jobs are enqueued (default: the process runtime's Redis)."""
    global _redis_provider
    _redis_provider = redis_provider or _default_redis


def job_id(delivery_id: int, attempt: int) -> str:
    return f"delivery-{delivery_id}-{attempt}"


def _fetch(redis: Redis, job: str) -> Job | None:
    try:
        return Job.fetch(job, connection=redis)
    except NoSuchJobError:
        return None


def is_live(redis: Redis, job: str) -> bool:
    found = _fetch(redis, job)
    return found is not None and found.get_status(refresh=False) in LIVE_STATUSES


def _job_kwargs(job: str) -> dict[str, Any]:
    # One attempt per job: retries of an unexpected crash are RQ's; retries of a failed POST are ours.
    return {
        "job_id": job,
        "job_timeout": JOB_TIMEOUT,
        "result_ttl": 3600,
        "failure_ttl": 7 * 24 * 3600,
        "retry": Retry(max=1, interval=30),
    }


def enqueue_now(
    deliveries: Iterable[tuple[int, int]], *, queue: str = DEFAULT_QUEUE, redis: Redis | None = None
) -> int:
    """Enqueue `deliver` for each (delivery id, next attempt) whose job is not already live."""
    conn = redis if redis is not None else _redis_provider()
    target = Queue(queue, connection=conn)
    count = 0
    for delivery_id, attempt in deliveries:
        job = job_id(delivery_id, attempt)
        if is_live(conn, job):
            continue
        target.enqueue(JOB_FUNC, delivery_id, queue, **_job_kwargs(job))
        count += 1
    return count


def enqueue_at(
    delivery_id: int,
    attempt: int,
    when: datetime,
    *,
    queue: str = DEFAULT_QUEUE,
    suffix: str = "",
    redis: Redis | None = None,
) -> str:
    """Schedule `deliver` for `when` (RQ's scheduler moves it to the queue then); returns the job id."""
    conn = redis if redis is not None else _redis_provider()
    job = job_id(delivery_id, attempt) + suffix
    # RQ keeps whole seconds (truncated): round up so the job never runs before `when`.
    at = datetime.fromtimestamp(math.ceil(when.timestamp()), UTC)
    Queue(queue, connection=conn).enqueue_at(at, JOB_FUNC, delivery_id, queue, **_job_kwargs(job))
    return job


def _abandoned(job: Job, started_before: datetime) -> bool:
    started = job.started_at
    return started is not None and started < started_before


def enqueue_lost(
    deliveries: Iterable[Due],
    *,
    started_before: datetime,
    queue: str = DEFAULT_QUEUE,
    redis: Redis | None = None,
) -> int:
    """Enqueue the next attempt of overdue deliveries whose job is gone; returns how many were enqueued.

    A job counts as gone when Redis lost it, when it ended, or when it is still marked started although it
    started before `started_before` (its worker was killed: the caller passes a time older than any live
    attempt's lease). A job presumed dead is deleted (with its entry in RQ's started registry, so RQ never
    retries it as well) and replaced under the same id.
    """
    conn = redis if redis is not None else _redis_provider()
    target = Queue(queue, connection=conn)
    count = 0
    for item in deliveries:
        job_key = job_id(item.delivery_id, item.attempt)
        job = _fetch(conn, job_key)
        if job is not None:
            status = job.get_status(refresh=False)
            if status == JobStatus.STARTED and _abandoned(job, started_before):
                logger.warning(
                    "delivery job presumed dead; replaced",
                    extra={"job_id": job_key, "delivery_id": item.delivery_id, "queue": job.origin},
                )
                job.delete(remove_from_queue=False)
            elif status in LIVE_STATUSES:
                continue
        target.enqueue(JOB_FUNC, item.delivery_id, queue, **_job_kwargs(job_key))
        count += 1
    return count


def enqueue_after_commit(
    session: Session, deliveries: Iterable[tuple[int, int]], *, queue: str = DEFAULT_QUEUE
) -> None:
    """Enqueue the deliveries once `session`'s transaction commits; nothing if it rolls back."""
    pending: list[tuple[str, int, int]] = session.info.setdefault(_PENDING_KEY, [])
    pending.extend((queue, delivery_id, attempt) for delivery_id, attempt in deliveries)
    if not session.info.get(_HOOKED_KEY):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED_KEY] = True


def _after_commit(session: Session) -> None:
    pending: list[tuple[str, int, int]] = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    by_queue: dict[str, list[tuple[int, int]]] = {}
    for queue, delivery_id, attempt in pending:
        by_queue.setdefault(queue, []).append((delivery_id, attempt))
    for queue, items in by_queue.items():
        try:
            count = enqueue_now(items, queue=queue)
        except Exception:  # the commit stands: the sweeper finds these deliveries
            logger.exception(
                "delivery enqueue failed after commit", extra={"queue": queue, "deliveries": len(items)}
            )
        else:
            logger.debug("deliveries enqueued", extra={"queue": queue, "enqueued": count})


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
