"""The periodic scheduler enqueues no second copy of a job whose last run still waits in its queue."""

from __future__ import annotations

from rq import Queue
from rq.cron import CronJob
from rq.utils import now

from connector.infra.queue import QUEUE_NAMES
from connector.infra.runtime import Runtime
from connector.scheduler import build_scheduler


def _queued(rt: Runtime) -> int:
    return sum(Queue(name, connection=rt.redis).count for name in QUEUE_NAMES)


def _due_again(jobs: list[CronJob]) -> None:
    for job in jobs:
        job.next_enqueue_time = now()


def test_a_periodic_job_still_waiting_in_its_queue_is_not_enqueued_again(rt: Runtime) -> None:
    scheduler = build_scheduler(rt)
    first = scheduler.enqueue_jobs()  # the periodic sweeps are due when the scheduler starts
    assert len(first) >= 5 and _queued(rt) == len(first)

    _due_again(first)  # their intervals passed while busy workers left them waiting
    assert scheduler.enqueue_jobs() == [] and _queued(rt) == len(first)

    for name in QUEUE_NAMES:  # taken off the queues (as a worker does when it starts them)
        Queue(name, connection=rt.redis).empty()
    _due_again(first)
    assert len(scheduler.enqueue_jobs()) == len(first) and _queued(rt) == len(first)

    _due_again(first)  # the newest run waits again (the first ones are gone)
    assert scheduler.enqueue_jobs() == [] and _queued(rt) == len(first)
