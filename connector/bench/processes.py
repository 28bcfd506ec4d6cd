"""Processes of a benchmark run (gunicorn, `storelink worker`): started in sessions of their own, logged to
files, and always stopped, politely first; and what to say first when they would compile what they import."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import Any

from connector.bench.errors import BenchError

BYTECODE_NOTE = (
    "note: PYTHONDONTWRITEBYTECODE is set and {module} has no bytecode cache: every process this benchmark "
    "starts compiles the modules it imports, the job workers on their first jobs inside the measured windows. "
    "Unset it, or compile the install once (python -m compileall), for figures of Storelink's own work."
)


def bytecode_note(modules: tuple[str, ...] = ("connector.app", "sqlalchemy.engine.base")) -> str | None:
    """What to say before a benchmark whose processes would compile what they import: Python is told not to
    write bytecode caches and one of `modules` (Storelink's and a dependency's) has none; None otherwise."""
    import importlib.util

    if not sys.dont_write_bytecode:
        return None
    for name in modules:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin and origin.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(origin)):
            return BYTECODE_NOTE.format(module=name)
    return None


def in_process(target: Any, *args: Any) -> dict[str, Any]:
    """Run `target(*args, queue)` in a fresh (spawned) process and return what it put on the queue; a
    `BenchError` naming the target and the child's error (its type and message) when it fails."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    while True:
        try:
            result: dict[str, Any] = queue.get(timeout=1.0)
            break
        except Empty:
            if not proc.is_alive():  # it died before answering
                raise BenchError(f"{target.__name__} exited with code {proc.exitcode}") from None
    proc.join()
    if CHILD_ERROR in result:
        raise BenchError(f"{target.__name__} failed: {result[CHILD_ERROR]}")
    if proc.exitcode:
        raise BenchError(f"{target.__name__} exited with code {proc.exitcode}")
    return result


CHILD_ERROR = "__bench_error__"


def _child(target: Any, args: tuple[Any, ...], queue: Any) -> None:
    """The spawned process of `in_process`: an error is put on the queue as one line, not printed."""
    try:
        target(*args, queue)
    except Exception as exc:
        queue.put({CHILD_ERROR: f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


@contextmanager
def piped_process(target: Any, what: str) -> Iterator[Any]:
    """`target(conn)` in a spawned process of its own (a service the bench talks to over a pipe, such as the
    platform's receiver); yields this end of the pipe once the process has sent its first message, and
    joins the process (killing it if it does not end) on leaving."""
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    proc = context.Process(target=target, args=(child,), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise BenchError(f"{what} did not start")
        yield parent
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


@contextmanager
def service_environment(
    database_url: str | None,
    workdir: Path,
    name: str,
    *,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[tuple[dict[str, str], Any, str]]:
    """A fresh database (migrated) and a private Redis for one measurement: yields the environment of the
    service processes it starts, the bench process's installed runtime, and the database URL. `env` adds
    variables for the processes, `settings` the same settings for the bench process itself."""
    from cryptography.fernet import Fernet

    from config.settings import load_settings
    from connector.bench.databases import drop_fresh, fresh_url
    from connector.infra import runtime
    from connector.infra.db import make_engine
    from connector.infra.embedded_redis import EmbeddedRedis
    from connector.infra.migrate import upgrade

    url = fresh_url(database_url, workdir, name)
    redis_server = EmbeddedRedis(workdir / "redis")
    redis_url = redis_server.start()
    try:
        process_env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "DATA_DIR": str(workdir / "data"),
            "SECRET_KEYS": Fernet.generate_key().decode(),
            **(env or {}),
        }
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        loaded = load_settings(
            database_url=url,
            redis_url=redis_url,
            data_dir=workdir / "data",
            secret_keys=process_env["SECRET_KEYS"],
            **(settings or {}),
        )
        rt = runtime.install(runtime.Runtime(settings=loaded, redis_url=redis_url))
        try:
            yield process_env, rt, url
        finally:
            rt.close()
    finally:
        redis_server.stop()
        drop_fresh(database_url, url)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(
    stack: Stack, name: str, app: str, port: int, extra_env: dict[str, str] | None = None
) -> None:
    """Start `app` under gunicorn with the project's configuration and wait until `/healthz` answers."""
    import time

    import requests

    import config

    conf = Path(config.__file__).parent / "gunicorn.conf.py"
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", f"127.0.0.1:{port}", app]
    proc = stack.start(name, argv, extra_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}; see {stack.logdir / name}.log")
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            return
        except requests.RequestException:  # not listening yet, or still importing on a busy machine
            time.sleep(0.1)
    raise BenchError(f"{name} did not start listening on port {port}")


def wait_for_workers(redis: Any, count: int, timeout: float = 60) -> None:
    """Wait until `count` RQ workers have registered with `redis` (started `storelink worker`s take seconds
    to import, and a measurement started before them would time their start-up)."""
    import time

    from rq import Worker

    deadline = time.monotonic() + timeout
    while Worker.count(connection=redis) < count:
        if time.monotonic() > deadline:
            raise BenchError(f"{count} workers did not register within {timeout:.0f} s")
        time.sleep(0.05)


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
