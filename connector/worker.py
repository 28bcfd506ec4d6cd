"""Worker composition root: an RQ worker on the urgency-ordered queues, with the error taxonomy installed."""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import SimpleWorker

from config.settings import Settings
from connector import logs, runtime
from connector.queue import QUEUE_NAMES, taxonomy_handler

logger = logging.getLogger(__name__)


def wire_outbound(settings: Settings) -> None:
    """Domain events published in this process fan out to webhook endpoints; deliveries use the settings."""
    from webhooks.outbound import delivery, fanout, isolation

    fanout.install()
    delivery.configure(
        delivery.DeliveryConfig(
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private_urls,
            lease_margin=timedelta(seconds=settings.webhook_lease_margin_seconds),
            isolation=isolation.IsolationPolicy(
                concurrency=settings.webhook_endpoint_concurrency,
                slow_after=settings.webhook_slow_after_seconds,
            ),
        )
    )


def build_worker(rt: runtime.Runtime, queue_names: list[str] | None = None) -> SimpleWorker:
    """A non-forking worker (jobs batch their own work, so a fork per job would only add ~7 ms each)."""
    names = queue_names or rt.settings.queue_names
    unknown = sorted(set(names) - set(QUEUE_NAMES))
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUE_NAMES)}")
    return SimpleWorker(
        [rt.queues[name] for name in names],
        connection=rt.redis,
        exception_handlers=[taxonomy_handler],
        disable_default_exception_handler=False,
    )


def run_worker(
    settings: Settings, redis_url: str, *, queue_names: list[str] | None = None, burst: bool = False
) -> bool:
    logs.configure(settings.log_level, settings.log_json)
    rt = runtime.install(runtime.Runtime(settings=settings, redis_url=redis_url))
    wire_outbound(settings)
    worker = build_worker(rt, queue_names)
    logger.info("worker starting", extra={"queues": worker.queue_names(), "burst": burst})
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
    finally:
        rt.close()
