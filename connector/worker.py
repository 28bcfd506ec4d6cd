"""Worker composition root: an RQ worker on the urgency-ordered queues, with the error taxonomy installed.

The worker outlives Redis outages: it waits for Redis (one log line when it goes, one when it is back) and
carries on, rather than exiting. RQ's scheduler (which moves retries and other scheduled jobs onto their
queues when due) runs as a thread of the worker instead of the forked child RQ uses by default: a thread
cannot outlive its process, whatever kills it (a forked child survives a SIGKILL of its parent and keeps
refreshing `rq:scheduler-lock:*`, so no other worker would take over scheduling). A parent-death signal
(PR_SET_PDEATHSIG) would be Linux-only and fires when the forking *thread* ends, not the process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from types import FrameType
from typing import Any

from rq import SimpleWorker
from rq.exceptions import StopRequested
from rq.scheduler import RQScheduler

from config.settings import Settings
from connector.affiliates import ledger
from connector.infra import logs, runtime
from connector.infra.queue import QUEUE_NAMES, taxonomy_handler
from connector.infra.reconnect import UNREACHABLE, RedisWatch, stop_on_signals
from connector.showcases import events as showcase_events
from webhooks.outbound import delivery, fanout, isolation

logger = logging.getLogger(__name__)

PUBSUB_POLL_SECONDS = 0.25
"""How long the command channel's thread waits for a message before it looks whether to stop (RQ waits 60 s,
and redis-py's `stop()` joins the thread, so stopping a worker would wait that long)."""
LOCK_RETRY_SECONDS = 15.0  # how often a scheduler thread without all its locks tries to take the missing ones
SCHEDULER_JOIN_SECONDS = 5.0


def wire_outbound(settings: Settings) -> None:
    """Domain events published in this process fan out to webhook endpoints; deliveries use the settings."""

    fanout.install()
    showcase_events.install()  # catalog and stock changes refresh the showcases they show in
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


class ThreadScheduler(RQScheduler):
    """RQ's scheduler loop in a daemon thread of the worker; it waits out Redis outages instead of dying."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_event = threading.Event()
        self._last_lock_try = 0.0

    def start(self) -> threading.Thread:
        self._status = self.Status.STARTED
        self._stop_event.clear()
        thread = threading.Thread(target=self._run, name="rq-scheduler", daemon=True)
        self._process = thread  # type: ignore[assignment]  # RQ only calls `_process.is_alive()`
        thread.start()
        return thread

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self._stop_event.set()

    def join(self, timeout: float) -> None:
        if isinstance(self._process, threading.Thread):
            self._process.join(timeout)

    def _run(self) -> None:
        watch = RedisWatch(self.connection, "worker (RQ scheduler thread)", stop=self._stop_event)
        born = False
        while not self._stop_event.is_set():
            try:
                if not born:
                    self.register_birth()
                    born = True
                self._take_missing_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
            except UNREACHABLE as exc:
                watch.lost(exc)
                watch.wait()
                continue
            except Exception:
                logger.exception("scheduler pass failed")
            self._stop_event.wait(self.interval)
        with contextlib.suppress(*UNREACHABLE):
            self.stop()

    def _take_missing_locks(self) -> None:
        if self.acquired_locks == self._queue_names:
            return
        if time.monotonic() - self._last_lock_try < LOCK_RETRY_SECONDS and self._last_lock_try:
            return
        self._last_lock_try = time.monotonic()
        self.acquire_locks()


class StorelinkWorker(SimpleWorker):
    """A non-forking worker (jobs batch their own work, so a fork per job would only add ~7 ms each) that
    waits out Redis outages and runs the RQ scheduler in a thread."""

    def __init__(self, *args: Any, watch: RedisWatch | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = watch or RedisWatch(self.connection, "worker")
        self._done = threading.Event()

    @property
    def stopping(self) -> threading.Event:
        """Set once a signal asked the worker to stop."""
        return self.watch.stop

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().request_stop(signum, frame)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ heartbeats between jobs and before every dequeue; while Redis is away this waits for it."""
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline)
        try:
            return super().heartbeat(timeout)
        except UNREACHABLE as exc:
            self.watch.lost(exc)
        if not self.watch.wait():
            raise StopRequested()
        return super().heartbeat(timeout)

    def subscribe(self) -> None:
        """RQ's command channel (`rq:pubsub:<worker>`), its thread polling every PUBSUB_POLL_SECONDS."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ declares it None
            sleep_time=PUBSUB_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """The command channel's thread: waits quietly while Redis is away (the main loop reports it) and
        ends once the worker is done (its `stop()` makes the thread's loop end after this returns)."""
        if not isinstance(exc, UNREACHABLE):
            raise exc
        self._done.wait(1.0)

    def _start_scheduler(
        self, burst: bool = False, logging_level: str | None = "INFO", *args: Any, **kwargs: Any
    ) -> None:
        scheduler = ThreadScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level or "INFO",
            serializer=self.serializer,
        )
        self.scheduler = scheduler
        if not burst:
            scheduler.start()
            return
        if scheduler.acquire_locks():
            try:
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()

    def stop_scheduler(self) -> None:
        if isinstance(self.scheduler, ThreadScheduler):
            self.scheduler.request_stop()
            self.scheduler.join(SCHEDULER_JOIN_SECONDS)

    def abandon(self) -> None:
        """Stop the threads without touching Redis (it is away)."""
        self._done.set()
        if self.scheduler:
            self.stop_scheduler()
        if self.pubsub_thread:
            self.pubsub_thread.stop()

    def teardown(self) -> None:
        self.abandon()
        try:
            self.register_death()
            self.unsubscribe()
        except UNREACHABLE as exc:
            # Harmless: RQ's record of this worker expires by itself.
            logger.debug("worker registration left to expire (Redis unreachable)", extra={"error": str(exc)})


def build_worker(
    rt: runtime.Runtime, queue_names: list[str] | None = None, *, watch: RedisWatch | None = None
) -> StorelinkWorker:
    names = queue_names or rt.settings.queue_names
    unknown = sorted(set(names) - set(QUEUE_NAMES))
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUE_NAMES)}")
    ledger.install()  # order events the jobs publish reach the commission ledger in their transaction
    return StorelinkWorker(
        [rt.queues[name] for name in names],
        connection=rt.redis,
        exception_handlers=[taxonomy_handler],
        disable_default_exception_handler=False,
        watch=watch,
    )


def run_worker(
    settings: Settings, redis_url: str, *, queue_names: list[str] | None = None, burst: bool = False
) -> bool:
    """Work until stopped by a signal (or, with `burst`, until the queues are empty), across Redis outages."""
    logs.configure(settings.log_level, settings.log_json)
    rt = runtime.install(runtime.Runtime(settings=settings, redis_url=redis_url))
    wire_outbound(settings)
    build_worker(rt, queue_names)  # unknown queue names fail here, before any wait
    stop = threading.Event()
    watch = RedisWatch(rt.redis, "worker", stop=stop)
    worked = False
    try:
        while not stop.is_set():
            with stop_on_signals(stop):
                if not watch.wait():
                    break
            worker = build_worker(rt, queue_names, watch=watch)
            logger.info("worker starting", extra={"queues": worker.queue_names(), "burst": burst})
            try:
                worked = _work(worker, settings, burst) or worked
            except UNREACHABLE as exc:
                worker.abandon()
                watch.lost(exc)
                continue
            if burst or stop.is_set():
                break
            # RQ's loop ended on an error of its own (it logged it); start a fresh worker after a pause.
            logger.warning("worker loop ended unexpectedly; starting it again")
            with stop_on_signals(stop):
                stop.wait(1.0)
    finally:
        rt.close()
    return worked


def _work(worker: StorelinkWorker, settings: Settings, burst: bool) -> bool:
    return bool(
        worker.work(burst=burst, with_scheduler=True, logging_level=logs.library_level(settings.log_level))
    )
