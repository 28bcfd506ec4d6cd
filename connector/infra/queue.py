"""Job queues: the Redis connection, the RQ queues by urgency, retry policy and the error taxonomy."""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from config.settings import Settings
from connector.domain.errors import PermanentError, RetryableError

logger = logging.getLogger(__name__)

ORDERS, EVENTS, SYNC, BULK = "orders", "events", "sync", "bulk"
# Outbound deliveries to slow or failing endpoints, served by workers of their own (`worker --queues webhooks`)
# so that such an endpoint never holds the workers of the queues above.
WEBHOOKS = "webhooks"
QUEUE_NAMES: tuple[str, ...] = (ORDERS, EVENTS, SYNC, BULK, WEBHOOKS)
LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
_JOB_ID = re.compile(r"[A-Za-z0-9_-]+")


def lease_seconds(settings: Settings) -> float:
    """How long an order push attempt holds its order: past it the worker is presumed dead. At least two
    store timeouts, so that a request cut off by a killed worker has ended at the store before anyone looks."""
    return max(float(settings.stale_after_seconds), 2 * settings.http_timeout_seconds)


def attempt_timeout(settings: Settings) -> int:
    """Longest one push job may run: a second less than the lease, so an attempt is over (RQ stops it) before
    anyone may take its order over, and two attempts never talk to the store at once."""
    return max(1, math.ceil(lease_seconds(settings)) - 1)


# Base retry delays in seconds; each job gets its own jittered copy so retries of a burst spread out.
RETRY_BASE: tuple[int, ...] = (5, 30, 120, 600, 1800)


def connect(url: str) -> Redis:
    return Redis.from_url(url, health_check_interval=30, socket_keepalive=True)


def jittered_retry(base: tuple[int, ...] = RETRY_BASE, jitter: float = 0.2) -> Retry:
    intervals = [max(1, round(b * random.uniform(1 - jitter, 1 + jitter))) for b in base]
    return Retry(max=len(intervals), interval=intervals)


FAILURE_TTL = 7 * 24 * 3600
"""Seconds a failed job (and its exception) is kept for support to look at and requeue."""
RESULT_TTL = 3600
"""Seconds a finished job's result is kept."""


def _check_job_id(job_id: str) -> None:
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"job id {job_id!r} must match [A-Za-z0-9_-]+")


class Queues:
    """The queues on one Redis connection, with deduplicated enqueue by job id."""

    def __init__(self, connection: Redis):
        self.connection = connection
        self.by_name = {name: Queue(name, connection=connection) for name in QUEUE_NAMES}

    def __getitem__(self, name: str) -> Queue:
        return self.by_name[name]

    def job_status(self, job_id: str) -> JobStatus | None:
        try:
            return Job.fetch(job_id, connection=self.connection).get_status(refresh=False)
        except NoSuchJobError:
            return None

    def is_live(self, job_id: str) -> bool:
        return self.job_status(job_id) in LIVE_STATUSES

    def enqueue(
        self,
        queue: str,
        func: Callable[..., Any] | str,
        *args: Any,
        job_id: str,
        retry: Retry | None = None,
        timeout: int | None = None,
        dedupe: bool = True,
        at_front: bool = False,
    ) -> Job | None:
        """Enqueue `func(*args)` once: with `dedupe`, a live job with the same id makes this a no-op;
        `at_front` puts it ahead of the queue's waiting jobs."""
        _check_job_id(job_id)
        if dedupe and self.is_live(job_id):
            logger.debug("job already live", extra={"job_id": job_id})
            return None
        return self.by_name[queue].enqueue(
            func,  # type: ignore[type-var]
            *args,
            job_id=job_id,
            retry=retry if retry is not None else jittered_retry(),
            job_timeout=timeout,
            failure_ttl=FAILURE_TTL,
            result_ttl=RESULT_TTL,
            at_front=at_front,
        )

    def enqueue_new(
        self,
        queue: str,
        func: Callable[..., Any] | str,
        calls: Sequence[tuple[str, tuple[Any, ...], Retry]],
        *,
        timeout: int | None = None,
    ) -> list[Job]:
        """Enqueue jobs that cannot be live yet (no dedupe), each `(job_id, args, retry)`, in one pipeline: the
        same jobs as `enqueue(..., dedupe=False)` of each, in one round trip."""
        for job_id, _, _ in calls:
            _check_job_id(job_id)
        target = self.by_name[queue]
        return target.enqueue_many(
            [
                Queue.prepare_data(  # type: ignore[type-var]
                    func,
                    args,
                    job_id=job_id,
                    retry=retry,
                    timeout=timeout,
                    failure_ttl=FAILURE_TTL,
                    result_ttl=RESULT_TTL,
                )
                for job_id, args, retry in calls
            ]
        )

    def depths(self) -> dict[str, int]:
        return {name: q.count for name, q in self.by_name.items()}

    def registry_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for name, q in self.by_name.items():
            counts[(name, "started")] = StartedJobRegistry(queue=q).count
            counts[(name, "failed")] = FailedJobRegistry(queue=q).count
            counts[(name, "scheduled")] = ScheduledJobRegistry(queue=q).count
            counts[(name, "finished")] = FinishedJobRegistry(queue=q).count
        return counts

    def failed_jobs(self) -> list[Job]:
        jobs: list[Job] = []
        for q in self.by_name.values():
            registry = FailedJobRegistry(queue=q)
            jobs.extend(j for j in Job.fetch_many(registry.get_job_ids(), connection=self.connection) if j)
        return jobs

    def workers_on(self, queue: str) -> int:
        """Workers registered as listening on `queue` (alive: a dead one's registration lapses)."""
        return Worker.count(connection=self.connection, queue=self.by_name[queue])

    def retry_at(self, queue: str, job_id: str) -> datetime | None:
        """When a job waiting for its next retry is due back on `queue`; None when it is not waiting."""
        try:
            return ScheduledJobRegistry(queue=self.by_name[queue]).get_scheduled_time(job_id)
        except NoSuchJobError:
            return None

    def retry_failed(self, job_id: str) -> bool:
        for q in self.by_name.values():
            registry = FailedJobRegistry(queue=q)
            if job_id in registry.get_job_ids():
                registry.requeue(job_id)
                return True
        return False


def taxonomy_handler(
    job: Job, exc_type: type[BaseException], exc_value: BaseException, _tb: TracebackType | None
) -> bool:
    """RQ exception handler: PermanentError (and AuthError) fail at once; RetryableError waits Retry-After.

    Runs before RQ decides whether to retry, so it can cancel or stretch the retry that RQ would schedule.
    """
    if isinstance(exc_value, PermanentError):
        job.retries_left = 0
        logger.warning(
            "job failed permanently",
            extra={"job_id": job.id, "code": exc_value.code, "error": exc_value.message},
        )
    elif isinstance(exc_value, RetryableError) and exc_value.retry_after and job.retries_left:
        intervals = list(job.retry_intervals or [0])
        index = max(len(intervals) - job.retries_left, 0)
        if index < len(intervals):
            intervals[index] = max(intervals[index], int(exc_value.retry_after + 0.999))
            job.retry_intervals = intervals
        logger.info("job will retry", extra={"job_id": job.id, "retry_after": exc_value.retry_after})
    return True
