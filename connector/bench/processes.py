"""Processes of a benchmark run (gunicorn, `storelink worker`): started in sessions of their own, logged to
files, and always stopped, politely first."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path
from queue import Empty
from typing import Any


def in_process(target: Any, *args: Any) -> dict[str, Any]:
    """Run `target(*args, queue)` in a fresh (spawned) process and return what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:
        try:
            result: dict[str, Any] = queue.get(timeout=1.0)
            break
        except Empty:
            if not proc.is_alive():  # it died before answering
                raise RuntimeError(f"benchmark process failed with exit code {proc.exitcode}") from None
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"benchmark process failed with exit code {proc.exitcode}")
    return result


def worker_argv(queues: str, *, burst: bool = False) -> list[str]:
    """The command line of a `storelink worker` on `queues`."""
    return [sys.executable, "-m", "connector.cli", "worker", "--queues", queues] + (
        ["--burst"] if burst else []
    )


class Stack:
    """The processes of one measurement, started in their own sessions and always stopped."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
