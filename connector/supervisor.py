"""Process supervisor for `storelink up`: runs the Procfile's processes, restarts crashes, stops cleanly.

A process that exits is restarted after a pause that doubles with each exit in a row (1 s up to a minute) and
starts over once the process has stayed up a while, so a process that keeps failing while a dependency is
away is retried for as long as it takes without flooding the log. Only a process that never stayed up since
`storelink up` started (a configuration error rather than an outage) makes the supervisor give up.

Every process `storelink up` runs is a `storelink` command forked from one fork server (multiprocessing's
`forkserver`) that imported their modules once: the web server (`storelink web`: gunicorn's master, which
creates the app and forks gunicorn's workers from it), the buffering front (`storelink front`), the job
workers and the scheduler. Each starts without importing anything and shares the server's pages, instead of
every one of them paying the imports (one to two CPU-seconds each). Such a process runs in a session of its
own, as one started by `Popen(start_new_session=True)` does, with `up`'s environment and its own command in
`sys.argv`; `ps` shows it as `storelink worker` (or as gunicorn and RQ retitle it: `gunicorn: master [...]`,
`rq:worker:...`). Stopping one signals its session's process group: gunicorn's workers go with their master."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Protocol

import setproctitle

from connector.cli import EXIT_SIGNALS, main
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


# What the fork server imports before it forks anything: `connector.infra.fork_server` (it ignores the signals that
# end `up`), then everything `storelink worker`, `scheduler`, `web` (the app, gunicorn and the worker class and
# logger its configuration names) and `front` run.
FORK_PRELOAD = (
    "connector.infra.fork_server",
    "connector.cli",
    "connector.cli.processes",
    "connector.worker",
    "connector.scheduler",
    "connector.app",
    "connector.web.server",
    "gunicorn.glogging",
    "gunicorn.workers.gthread",
    "connector.infra.front",
)
# Signals that end `storelink up` (its own and the CLI's), held while a fork's pid is not yet known.
# `connector.infra.fork_server` ignores the same ones in the fork server (a copy: it imports nothing first).
HELD_SIGNALS = {signal.SIGINT, *EXIT_SIGNALS}


class Running(Protocol):
    """What the supervisor needs of a started process (a `Popen` or a `Forked`)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def run_command(args: list[str], env: dict[str, str], log: str | None = None) -> None:
    """The body of a forked process: `storelink ARGS` with environment `env`, in a session of its own, its
    output appended to file `log` if given."""
    os.setsid()
    # The server ignores the ending signals (connector.infra.fork_server); a command starts with the defaults.
    for sig in HELD_SIGNALS:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    setproctitle.setproctitle(" ".join(["storelink", *args]))  # first: it takes the environment's memory
    os.environ.clear()
    os.environ.update(env)
    # As `storelink ARGS` run the way `up` was (the fork has `up`'s own argv): what reads it (gunicorn, to
    # re-execute itself) finds this command.
    sys.argv = [sys.argv[0], *args]
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, sys.stdout.fileno())
        os.dup2(fd, sys.stderr.fileno())
        os.close(fd)
    main(args=args, prog_name="storelink")  # exits with the command's status


class Forked:
    """A `storelink` command running in a process forked from the fork server, with Popen's poll and wait
    (its status is negative for a signal, as Popen's is)."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process
        assert process.pid is not None
        self.pid: int = process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(f"storelink (pid {self.pid})", timeout or 0.0)
        return code


class CommandForks:
    """Starts `storelink` commands as processes forked from a fork server that imported FORK_PRELOAD with
    `env` as its environment (what those modules read at import, such as the metrics' folder, is `env`'s)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._context = multiprocessing.get_context("forkserver")

    def ensure_server(self) -> None:
        self._context.set_forkserver_preload(list(FORK_PRELOAD))
        with _environment(self.env):  # the server is spawned with this process's environment
            forkserver.ensure_running()

    def start(self, args: list[str], log: Path | None = None) -> Forked:
        """Fork `storelink ARGS`, its output appended to `log` if given (the first start waits for the
        server's imports)."""
        self.ensure_server()
        target_args = (args, self.env, None if log is None else str(log))
        process = self._context.Process(target=run_command, args=target_args, name="storelink")
        process.start()
        return Forked(process)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold HELD_SIGNALS until the block ends: a handler that ends the process runs after it, not in it."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Child:
    name: str
    argv: list[str]  # the command line, or the `storelink` arguments of a forked command
    forked: bool = False
    process: Running | None = None
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
        self._forks = CommandForks(self.env)

    def add(self, name: str, argv: list[str]) -> None:
        """Run command line `argv`."""
        self.children.append(Child(name, argv))

    def add_command(self, name: str, args: list[str]) -> None:
        """Run `storelink ARGS`, forked from the fork server."""
        self.children.append(Child(name, args, forked=True))

    def _start(self, child: Child) -> None:
        if child.forked:
            # The server is started first (it and its children would inherit held signals); then an ending
            # signal waits until the fork is recorded, so that `stop` knows of it (the first fork waits for
            # the server's imports, a second or two).
            self._forks.ensure_server()
            with _signals_held():
                child.process = self._forks.start(child.argv)
        else:
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


def _signal_group(proc: Running, sig: int) -> None:
    """Signal `proc` and what it started (its session's group); `proc` alone if it has no group yet (a
    forked process that has not reached its `setsid`)."""
    with contextlib.suppress(ProcessLookupError):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            os.kill(proc.pid, sig)
