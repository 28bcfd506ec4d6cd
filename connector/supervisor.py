"""Process supervisor for `storelink up`: runs the Procfile's processes, restarts crashes, stops cleanly.

A process that exits is restarted after a pause that doubles with each exit in a row (1 s up to a minute) and
starts over once the process has stayed up a while, so a process that keeps failing while a dependency is
away is retried for as long as it takes without flooding the log. Only a process that never stayed up since
`storelink up` started (a configuration error rather than an outage) makes the supervisor give up."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from connector.infra.queue import WEBHOOKS

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5  # exits in a row after which a process that never stayed up is given up on
HEALTHY_AFTER = 30.0  # seconds up after which an exit counts as the first of a new series
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
STOP_GRACE = 10.0


def worker_processes(
    count: int, *, webhook_workers: int = 1, python: str = sys.executable
) -> list[tuple[str, list[str]]]:
    """(name, argv) of the job workers `storelink up` runs: `count` on WORKER_QUEUES and `webhook_workers`
    on the webhooks queue alone, so deliveries to slow endpoints never hold the other workers."""
    base = [python, "-m", "connector.cli", "worker"]
    processes = [(f"worker.{i + 1}", list(base)) for i in range(count)]
    processes += [(f"webhooks.{i + 1}", [*base, "--queues", WEBHOOKS]) for i in range(webhook_workers)]
    return processes


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    exits: int = 0  # exits in a row, each before the process had been up HEALTHY_AFTER seconds
    ever_healthy: bool = False
    restart_at: float | None = None

    def exited(self, now: float) -> float:
        """Record an exit; returns the pause before the restart."""
        if now - self.started_at >= HEALTHY_AFTER:
            self.ever_healthy = True
            self.exits = 0
        self.exits += 1
        return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.exits - 1))


class Supervisor:
    """Starts each child in its own session, restarts one that dies, and stops all on SIGINT/SIGTERM."""

    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)
        self.children: list[Child] = []
        self._stopping = False

    def add(self, name: str, argv: list[str]) -> None:
        self.children.append(Child(name, argv))

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(child.argv, env=self.env, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info("process started", extra={"proc": child.name, "pid": child.process.pid})

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        exit_code = 0
        try:
            for child in self.children:
                self._start(child)
            while not self._stopping:
                time.sleep(0.2)
                for child in self.children:
                    if self._stopping:
                        break
                    if not self._check(child):
                        self._stopping = True
                        exit_code = 1
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return exit_code

    def _check(self, child: Child) -> bool:
        """Restart `child` if it exited and its pause is over; False when it is to be given up on."""
        assert child.process is not None
        now = time.monotonic()
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._start(child)
            return True
        code = child.process.poll()
        if code is None:
            return True
        _signal_group(child.process, signal.SIGKILL)  # what it started goes with it
        pause = child.exited(now)
        if not child.ever_healthy and child.exits > MAX_RESTARTS:
            logger.error(
                "process keeps exiting and never stayed up; stopping",
                extra={"proc": child.name, "exit_code": code, "exits": child.exits},
            )
            return False
        logger.warning(
            "process exited; restarting",
            extra={"proc": child.name, "exit_code": code, "restart_in_seconds": pause},
        )
        child.restart_at = now + pause
        return True

    def stop(self) -> None:
        live = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for proc in live:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
