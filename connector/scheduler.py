"""Scheduler composition root: periodic maintenance jobs through RQ's cron scheduler.

The scheduler outlives Redis outages: RQ's loop ends on the first failed Redis call, so it is started again
(same jobs, same intervals) once Redis answers, until a signal stops it.
"""

from __future__ import annotations

import logging
import threading
from types import FrameType
from typing import Any

from rq import Queue
from rq.cron import CronJob, CronScheduler
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now

from config.settings import Settings
from connector.affiliates import approval, clicks
from connector.catalog import jobs
from connector.infra import logs, runtime
from connector.infra.queue import EVENTS, ORDERS
from connector.infra.reconnect import UNREACHABLE, RedisWatch, stop_on_signals
from connector.orders import push, reconcile, reconciliation
from connector.showcases import events as showcase_events
from connector.stock import store_orders
from webhooks.inbound import drain
from webhooks.outbound import delivery

logger = logging.getLogger(__name__)


class StorelinkCronScheduler(CronScheduler):
    """RQ's cron scheduler that remembers a stop request, so a Redis error while stopping still stops it."""

    def __init__(self, *args: Any, stop: threading.Event | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_requested = stop or threading.Event()

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()
        super()._request_stop(signum, frame)

    def enqueue_jobs(self) -> list[CronJob]:
        """Enqueue the jobs that are due, except one whose last run still waits in its queue (workers busy
        with a more urgent queue): its interval starts again instead, so busy workers find one sweep of each
        kind waiting for them, not a pile of identical ones in front of the queue's other jobs."""
        enqueue_time = now()
        enqueued: list[CronJob] = []
        for job in self._cron_jobs:
            if not job.should_run():
                continue
            if not self._still_queued(job):
                job.enqueue(self.connection)
                enqueued.append(job)
            job.set_enqueue_time(enqueue_time)
        return enqueued

    def _still_queued(self, job: CronJob) -> bool:
        last = job.get_job_ids(self.connection, 0, 0)  # the newest
        if not last:
            return False
        try:
            found = Job.fetch(last[0], connection=self.connection)
        except NoSuchJobError:
            return False
        if found.get_status() != JobStatus.QUEUED:
            return False
        # Still in its queue's list: a job a worker took off it and lost before starting it stays "queued".
        return Queue(found.origin, connection=self.connection).get_job_position(found.id) is not None


def build_scheduler(rt: runtime.Runtime, stop: threading.Event | None = None) -> StorelinkCronScheduler:
    scheduler = StorelinkCronScheduler(
        connection=rt.redis, logging_level=logs.library_level(rt.settings.log_level), stop=stop
    )
    # Sweeping is cheap and idempotent; it runs on the urgent events queue so a long sync never delays it.
    scheduler.register(jobs.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    # The order push sweep takes over pushes of workers presumed dead: it goes to the front of the orders
    # queue, which workers take before events, so a backlog of pushes never holds back their takeover.
    push_sweep = scheduler.register(
        push.sweep, ORDERS, interval=rt.settings.sweep_interval_seconds, job_timeout=120
    )
    push_sweep.job_options["at_front"] = True
    # Expired holds, holds released without their counter, confirmed holds the store caught up with, pins
    # whose countdown is over.
    scheduler.register(
        reconcile.reconcile, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120
    )
    # Each installed merchant reconciled with its store (stock drift, orders left accepted, subscriptions,
    # holds), one sync run of kind reconcile per merchant.
    scheduler.register(
        reconciliation.schedule_all, EVENTS, interval=rt.settings.reconcile_interval_seconds, job_timeout=120
    )
    # The periodic jobs each installed adapter declares (store orders taken off the platform's stock, the
    # stock reconcile that backs up notifications a store stopped retrying); each queues one job per
    # merchant of its kind on the sync queue.
    for kind, periodic in store_orders.all_periodic_jobs():
        scheduler.register(
            store_orders.run_periodic,
            EVENTS,
            args=(kind, periodic.job.value),
            interval=periodic.interval_seconds,
            job_timeout=120,
        )

    # Commission whose hold is over is approved (and announced) for the platform's next payout.
    scheduler.register(
        approval.approve_due, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120
    )
    # Clicks on creators' links wait in a Redis list; this writes them to the database in batches.
    scheduler.register(
        clicks.flush_job, EVENTS, interval=rt.settings.affiliate_click_flush_seconds, job_timeout=120
    )
    scheduler.register(delivery.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    scheduler.register(drain.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    # Showcases whose view changed without an event (holds expired): refreshed, announced if it shows.
    scheduler.register(
        showcase_events.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120
    )
    return scheduler


def run_scheduler(settings: Settings, redis_url: str) -> None:
    logs.configure(settings.log_level, settings.log_json)
    rt = runtime.install(runtime.Runtime(settings=settings, redis_url=redis_url))
    logger.info("scheduler starting", extra={"sweep_interval": settings.sweep_interval_seconds})
    stop = threading.Event()
    watch = RedisWatch(rt.redis, "scheduler", stop=stop)
    try:
        while True:
            with stop_on_signals(stop):
                if not watch.wait():
                    return
            scheduler = build_scheduler(rt, stop)
            try:
                scheduler.start()
            except UNREACHABLE as exc:
                watch.lost(exc)
            if stop.is_set():
                return
    finally:
        rt.close()
