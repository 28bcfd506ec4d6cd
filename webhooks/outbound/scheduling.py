"""How delivery jobs reach RQ: after the commit that made them due, now or at a time, with stable job ids.

Job ids are `delivery-<id>-<attempt>` (the attempt the job will make), so the sweeper can ask whether the
job for a pending delivery is still alive. A job that moved its delivery to the slow queue enqueues
`delivery-<id>-<attempt>-moved`, and one that put its delivery off (breaker open, endpoint at its cap)
enqueues `delivery-<id>-<attempt>-deferred-<unix time>` after moving `next_attempt_at` to that time. Each
delivery goes to its endpoint's queue (`isolation.routes`); the job's second argument is its home queue.
First attempts of new deliveries are not enqueued one by one: the commit wakes their endpoint's
dispatcher (`dispatch.dispatch`, at most one queued per endpoint, however long it waits in a busy queue),
which claims and sends them in rounds.
Enqueue failures are logged, never raised: the database is the record and `delivery.sweep_deliveries`
enqueues whatever was lost, through `enqueue_lost`, which also replaces jobs whose worker was killed.
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

from connector.infra import runtime
from connector.infra.queue import EVENTS, FAILURE_TTL, LIVE_STATUSES
from webhooks.outbound import isolation

logger = logging.getLogger(__name__)

JOB_FUNC = "webhooks.outbound.delivery.deliver"
DISPATCH_FUNC = "webhooks.outbound.dispatch.dispatch"
DISPATCH_FLAG_TTL = 15
"""Seconds a dispatcher's wake-up flag lives unrenewed (every round renews it). While it is set, or while
the endpoint's last dispatcher job still waits in its queue, the sweeper leaves the endpoint's due first
attempts to the dispatcher and fan-outs enqueue no other; a lost one holds them back no longer than this
(its claimed deliveries are held by their lease, not by the flag)."""
DISPATCH_JOB_TIMEOUT = 180
DISPATCH_JOB_KEY_TTL = 7 * 24 * 3600
"""Seconds the id of an endpoint's last dispatcher job is kept (how long a queued one can be waited for)."""
DEFAULT_QUEUE = EVENTS
JOB_TIMEOUT = 120
MOVED_SUFFIX = "-moved"
_PENDING_KEY = "webhooks.outbound.pending"
_HOOKED_KEY = "webhooks.outbound.hooked"

RedisProvider = Callable[[], Redis]


class Due(NamedTuple):
    """A delivery's next attempt to enqueue; the endpoint (when known) picks the queue."""

    delivery_id: int
    attempt: int
    endpoint_id: int | None = None


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
        "job_timeout": JOB_TIMEOUT,
        "result_ttl": 3600,
        "failure_ttl": 7 * 24 * 3600,
        "retry": Retry(max=1, interval=30),
        "job_id": job,
    }


def _args(delivery_id: int, home: str, waits: int) -> tuple[Any, ...]:
    return (delivery_id, home, waits) if waits else (delivery_id, home)


def enqueue_now(
    deliveries: Iterable[Due | tuple[int, int]],
    *,
    queue: str = DEFAULT_QUEUE,
    redis: Redis | None = None,
    target: str | None = None,
    suffix: str = "",
) -> int:
    """Enqueue `deliver` for each delivery whose job is not already live; returns how many were enqueued.

    `queue` is the deliveries' home queue; each goes to its endpoint's queue (the slow queue for a slow
    endpoint), or to `target` when given.
    """
    conn = redis if redis is not None else _redis_provider()
    items = [Due(*d) for d in deliveries]
    if not items:
        return 0
    targets = {} if target else isolation.routes(conn, queue, (d.endpoint_id for d in items))
    queues: dict[str, Queue] = {}
    count = 0
    for item in items:
        job = job_id(item.delivery_id, item.attempt) + suffix
        if is_live(conn, job):
            continue
        name = target or targets.get(item.endpoint_id, queue)
        destination = queues.setdefault(name, Queue(name, connection=conn))
        destination.enqueue(JOB_FUNC, *_args(item.delivery_id, queue, 0), **_job_kwargs(job))
        count += 1
    return count


def enqueue_at(
    delivery_id: int,
    attempt: int,
    when: datetime,
    *,
    queue: str = DEFAULT_QUEUE,
    target: str | None = None,
    suffix: str = "",
    waits: int = 0,
    redis: Redis | None = None,
) -> str:
    """Schedule `deliver` for `when` (RQ's scheduler moves it to the queue then); returns the job id.

    `queue` is the delivery's home queue, `target` the queue the job goes to (default: the home queue);
    `waits` counts how often the delivery already waited for a free slot at its endpoint.
    """
    conn = redis if redis is not None else _redis_provider()
    job = job_id(delivery_id, attempt) + suffix
    # RQ keeps whole seconds (truncated): round up so the job never runs before `when`.
    at = datetime.fromtimestamp(math.ceil(when.timestamp()), UTC)
    Queue(target or queue, connection=conn).enqueue_at(
        at, JOB_FUNC, *_args(delivery_id, queue, waits), **_job_kwargs(job)
    )
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

    First attempts to an endpoint whose dispatcher is queued or working (its flag is set) are its to send.

    A job counts as gone when Redis lost it, when it ended, when it is still marked started although it
    started before `started_before` (its worker was killed: the caller passes a time older than any live
    attempt's lease), or when it waits on the slow queue and no worker serves that queue any more. A job
    presumed dead is deleted (with its entry in RQ's started registry, so RQ never retries it as well) and
    replaced under the same id.
    """
    conn = redis if redis is not None else _redis_provider()
    items = list(deliveries)
    dispatching = dispatching_endpoints(conn, {d.endpoint_id for d in items if d.attempt == 1})
    items = [d for d in items if not (d.attempt == 1 and d.endpoint_id in dispatching)]
    if not items:
        return 0
    targets = isolation.routes(conn, queue, (d.endpoint_id for d in items))
    queues: dict[str, Queue] = {}
    count = 0
    for item in items:
        base = job_id(item.delivery_id, item.attempt)
        alive = False
        for candidate in (base, base + MOVED_SUFFIX):
            job = _fetch(conn, candidate)
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status not in LIVE_STATUSES:
                continue
            if status == JobStatus.STARTED and _abandoned(job, started_before):
                logger.warning(
                    "delivery job presumed dead; replaced",
                    extra={"job_id": candidate, "delivery_id": item.delivery_id, "queue": job.origin},
                )
                job.delete(remove_from_queue=False)
                continue
            if (
                status == JobStatus.QUEUED
                and job.origin == isolation.SLOW_QUEUE
                and not isolation.served(conn, job.origin)
            ):
                continue  # stranded on a queue no worker serves: enqueue it where one does
            alive = True
            break
        if alive:
            continue
        name = targets.get(item.endpoint_id, queue)
        destination = queues.setdefault(name, Queue(name, connection=conn))
        destination.enqueue(JOB_FUNC, *_args(item.delivery_id, queue, 0), **_job_kwargs(base))
        count += 1
    return count


def dispatch_flag_key(endpoint_id: int) -> str:
    return f"storelink:webhooks:dispatch:{endpoint_id}"


def signal_dispatch(redis: Redis, endpoint_ids: list[int], *, queue: str = DEFAULT_QUEUE) -> int:
    """Make sure a dispatcher is queued or working for each endpoint; returns how many jobs were enqueued.

    Each goes to its endpoint's queue (`isolation.routes`); `queue` is the deliveries' home queue.
    """
    ids = sorted(set(endpoint_ids))
    if not ids:
        return 0
    with redis.pipeline(transaction=False) as pipe:
        for endpoint_id in ids:
            pipe.set(dispatch_flag_key(endpoint_id), b"1", nx=True, ex=DISPATCH_FLAG_TTL)
        woken = [e for e, was_set in zip(ids, pipe.execute(), strict=True) if was_set]
    on_the_way = _queued_dispatchers(redis, woken)  # their last dispatcher job still waits: it will run
    woken = [e for e in woken if e not in on_the_way]
    if not woken:
        return 0
    targets = isolation.routes(redis, queue, woken)
    try:
        with redis.pipeline() as pipe:
            for endpoint_id in woken:
                job = Queue(targets.get(endpoint_id, queue), connection=redis).enqueue(
                    DISPATCH_FUNC,
                    endpoint_id,
                    queue,
                    pipeline=pipe,
                    job_timeout=DISPATCH_JOB_TIMEOUT,
                    result_ttl=300,
                    failure_ttl=FAILURE_TTL,
                    retry=Retry(max=1, interval=30),
                )
                pipe.set(dispatch_job_key(endpoint_id), job.id, ex=DISPATCH_JOB_KEY_TTL)
            pipe.execute()
    except Exception:
        redis.delete(*(dispatch_flag_key(e) for e in woken))
        raise
    return len(woken)


def dispatch_job_key(endpoint_id: int) -> str:
    return f"storelink:webhooks:dispatch-job:{endpoint_id}"


def _queued_dispatchers(redis: Redis, endpoint_ids: list[int]) -> set[int]:
    """Which of these endpoints' last dispatcher job still waits in its queue (it will run, however long
    the queue: its flag may have lapsed meanwhile, yet it is not lost)."""
    if not endpoint_ids:
        return set()
    with redis.pipeline(transaction=False) as pipe:
        for endpoint_id in endpoint_ids:
            pipe.get(dispatch_job_key(endpoint_id))
        recorded = pipe.execute()
    queued = set()
    for endpoint_id, job_id_ in zip(endpoint_ids, recorded, strict=True):
        job = _fetch(redis, job_id_.decode()) if job_id_ else None
        if job is not None and job.get_status(refresh=False) == JobStatus.QUEUED:
            queued.add(endpoint_id)
    return queued


def dispatching_endpoints(redis: Redis, endpoint_ids: Iterable[int | None]) -> set[int]:
    """Which of these endpoints have a dispatcher queued or working: its flag is set, or its last job waits
    in its queue."""
    ids = sorted({e for e in endpoint_ids if e is not None})
    if not ids:
        return set()
    with redis.pipeline(transaction=False) as pipe:
        for endpoint_id in ids:
            pipe.exists(dispatch_flag_key(endpoint_id))
        flagged = {e for e, found in zip(ids, pipe.execute(), strict=True) if found}
    return flagged | _queued_dispatchers(redis, [e for e in ids if e not in flagged])


def enqueue_after_commit(
    session: Session, deliveries: Iterable[Due | tuple[int, int]], *, queue: str = DEFAULT_QUEUE
) -> None:
    """Enqueue the deliveries once `session`'s transaction commits; nothing if it rolls back. First attempts
    to a known endpoint wake its dispatcher (`signal_dispatch`); other attempts get one job each."""
    pending: list[tuple[str, Due]] = session.info.setdefault(_PENDING_KEY, [])
    pending.extend((queue, Due(*d)) for d in deliveries)
    if not session.info.get(_HOOKED_KEY):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED_KEY] = True


def _after_commit(session: Session) -> None:
    pending: list[tuple[str, Due]] = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    by_queue: dict[str, list[Due]] = {}
    for queue, due in pending:
        by_queue.setdefault(queue, []).append(due)
    for queue, items in by_queue.items():
        fresh = [d for d in items if d.attempt == 1 and d.endpoint_id is not None]
        later = [d for d in items if not (d.attempt == 1 and d.endpoint_id is not None)]
        try:
            woken = signal_dispatch(
                _redis_provider(), [d.endpoint_id for d in fresh if d.endpoint_id], queue=queue
            )
            count = enqueue_now(later, queue=queue)
        except Exception:  # the commit stands: the sweeper finds these deliveries
            logger.exception(
                "delivery enqueue failed after commit", extra={"queue": queue, "deliveries": len(items)}
            )
        else:
            logger.debug(
                "deliveries enqueued", extra={"queue": queue, "enqueued": count, "dispatchers": woken}
            )


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
