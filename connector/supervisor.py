"""Process supervisor for `storelink up`: runs the Procfile's processes, restarts crashes, stops cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType

from connector.queue import WEBHOOKS

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
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
    restarts: list[float] = field(default_factory=list)


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
                    assert child.process is not None
                    code = child.process.poll()
                    if code is None or self._stopping:
                        continue
                    now = time.monotonic()
                    child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW] + [now]
                    if len(child.restarts) > MAX_RESTARTS:
                        logger.error(
                            "process keeps crashing; stopping", extra={"proc": child.name, "exit_code": code}
                        )
                        self._stopping = True
                        exit_code = 1
                        break
                    logger.warning(
                        "process exited; restarting", extra={"proc": child.name, "exit_code": code}
                    )
                    self._start(child)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return exit_code

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
