"""Scheduler composition root: periodic maintenance jobs through RQ's cron scheduler."""

from __future__ import annotations

import logging

from rq.cron import CronScheduler

from config.settings import Settings
from connector import jobs, logs, order_push, reservations, runtime, walmart_stock
from connector.queue import EVENTS

logger = logging.getLogger(__name__)


def build_scheduler(rt: runtime.Runtime) -> CronScheduler:
    scheduler = CronScheduler(connection=rt.redis, logging_level=rt.settings.log_level)
    # Sweeping is cheap and idempotent; it runs on the urgent events queue so a long sync never delays it.
    scheduler.register(jobs.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    scheduler.register(order_push.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    # Expired holds, holds released without their counter, confirmed holds the store caught up with, pins
    # whose countdown is over.
    scheduler.register(
        reservations.reconcile, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120
    )
    # Walmart: orders placed on Walmart taken off the platform's stock, and the stock reconcile (the backstop
    # for notifications Walmart stopped retrying); each queues one job per merchant on the sync queue.
    scheduler.register(
        walmart_stock.poll_orders_all, EVENTS, interval=walmart_stock.ORDERS_POLL_SECONDS, job_timeout=120
    )
    scheduler.register(
        walmart_stock.reconcile_all, EVENTS, interval=walmart_stock.RECONCILE_SECONDS, job_timeout=120
    )
    from webhooks.inbound import drain
    from webhooks.outbound import delivery

    scheduler.register(delivery.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    scheduler.register(drain.sweep, EVENTS, interval=rt.settings.sweep_interval_seconds, job_timeout=120)
    return scheduler


def run_scheduler(settings: Settings, redis_url: str) -> None:
    logs.configure(settings.log_level, settings.log_json)
    rt = runtime.install(runtime.Runtime(settings=settings, redis_url=redis_url))
    scheduler = build_scheduler(rt)
    logger.info("scheduler starting", extra={"sweep_interval": settings.sweep_interval_seconds})
    try:
        scheduler.start()
    finally:
        rt.close()
