"""End to end: the RQ scheduler of a `storelink worker` (it moves retries and other scheduled jobs onto their
queues) lives and dies with its worker: it runs scheduled jobs, and a SIGKILLed worker leaves no process
behind that keeps the scheduler locks."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import psutil
from redis import Redis
from rq import Queue, Worker
from rq.job import Job, JobStatus

from config.settings import Settings
from tests.helpers import SQLITE_ONLY, Processes, process_env, wait_for

LOCK = "rq:scheduler-lock:orders"


@SQLITE_ONLY
def test_a_killed_worker_leaves_no_scheduler_holding_the_locks(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    procs = Processes(process_env(settings, tmp_path), tmp_path)
    family: list[psutil.Process] = []
    try:
        worker = procs.start("worker", "worker", "--queues", "orders")
        job = Queue("orders", connection=redis).enqueue_in(timedelta(seconds=1), "os.getpid")
        wait_for(
            lambda: Job.fetch(job.id, connection=redis).get_status() == JobStatus.FINISHED,
            60,
            "the worker's scheduler to queue the scheduled job and the worker to run it",
            interval=0.2,
        )
        assert redis.exists(LOCK)
        family = psutil.Process(worker.pid).children(recursive=True)

        worker.send_signal(signal.SIGKILL)
        worker.wait()
        ttl = redis.ttl(LOCK)
        time.sleep(3)  # a live scheduler refreshes its lock every second

        assert 0 <= redis.ttl(LOCK) < ttl  # the lock runs out: nothing of the dead worker refreshes it
        survivors = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert survivors == []
    finally:
        procs.stop()
        for proc in family:
            if proc.is_running():
                proc.kill()


@SQLITE_ONLY
def test_a_worker_asked_to_stop_does_not_wait_on_its_command_channel(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    """RQ's command-channel thread waits 60 s for a message and redis-py joins it on stop: the worker polls
    it more often, so SIGTERM (or a burst worker running out of jobs) ends the process at once."""
    procs = Processes(process_env(settings, tmp_path), tmp_path)
    try:
        worker = procs.start("worker", "worker", "--queues", "orders")

        def subscribed() -> bool:
            """Pub/sub channels are server-wide: look for this database's worker's own."""
            channels = [f"rq:pubsub:{w.name}" for w in Worker.all(connection=redis)]
            return bool(channels) and all(count for _, count in redis.pubsub_numsub(*channels))

        wait_for(subscribed, 60, "the worker to subscribe to its command channel", interval=0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0  # it took the command channel's full minute before

        burst = procs.start("burst", "worker", "--queues", "orders", "--burst")
        assert burst.wait(timeout=30) == 0
    finally:
        procs.stop()
