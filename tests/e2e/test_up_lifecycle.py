"""End to end: how `storelink up` and other commands start and stop. A command that cannot start says why in
one line and exits non-zero; a command ended by a signal stops the private Redis it started and removes its
temporary folder; `up` forks gunicorn and the front from its fork server, restarts a killed web server, and
creates no control socket shared with other gunicorn instances."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from config.settings import Settings
from tests.helpers import SQLITE_ONLY, Up, free_port, process_env, wait_for

pytestmark = pytest.mark.slow

START_TIMEOUT = 120  # a bound on a command that must exit by itself, not a measure of speed


def _storelink(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def up(settings: Settings, redis, tmp_path: Path) -> Iterator[Up]:
    runtime_dir = tmp_path / "xdg"
    runtime_dir.mkdir()
    server = Up(settings, tmp_path, workers=1, XDG_RUNTIME_DIR=str(runtime_dir), HOME=str(tmp_path))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@SQLITE_ONLY
def test_up_on_a_port_in_use_exits_with_a_message(settings: Settings, redis, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _storelink(process_env(settings, tmp_path), "up", "--port", str(port), "--workers", "1")
    _assert_one_line_error(result, f"port {port}", "already in use")
    assert "web on http" not in result.stderr  # nothing was started


@SQLITE_ONLY
def test_a_second_up_on_the_same_data_dir_exits_with_a_message(up: Up):
    result = _storelink(up.env, "up", "--port", str(free_port()), "--workers", "1")
    _assert_one_line_error(result, "another `storelink up`", f"pid {up.proc.pid}", up.env["DATA_DIR"])
    assert requests.get(f"{up.url}/healthz", timeout=10).status_code == 200  # the first one is untouched


MASTER = "gunicorn: master [connector.app:create_app()]"  # the title of gunicorn's master process


def _forked(up: Up) -> dict[str, int]:
    """The processes forked from `up`'s fork server, by title up to its first space-separated option."""
    return {" ".join(p.cmdline()).split(" --")[0].strip(): p.pid for p in up.forked()}


@SQLITE_ONLY
def test_up_forks_gunicorn_and_the_front_and_restarts_a_killed_web_server(up: Up, tmp_path: Path):
    """gunicorn's master (which forks its own workers) and the front are forked from the fork server, as the
    job workers are: `up` starts no other interpreter. A gunicorn master killed outright is restarted with its
    workers, on the same port behind the front. gunicorn creates no control socket shared with other instances."""
    assert requests.get(f"{up.url}/healthz", timeout=10).status_code == 200
    forked = _forked(up)
    assert set(forked) >= {MASTER, "storelink front", "storelink scheduler"}
    assert len(forked) == up.processes
    others = [" ".join(p.cmdline()) for p in psutil.Process(up.proc.pid).children()]
    assert len(others) == 2 and all("multiprocessing" in command for command in others), others
    master = psutil.Process(forked[MASTER])
    workers = master.children()
    assert workers and all(" ".join(w.cmdline()).startswith("gunicorn: worker") for w in workers)
    assert not (tmp_path / "xdg" / "gunicorn.ctl").exists()
    assert not (tmp_path / ".gunicorn").exists()

    master.kill()
    _, alive = psutil.wait_procs(workers, timeout=15)  # the master's process group goes with it
    assert not alive

    def web_back() -> bool:
        restarted = _forked(up).get(MASTER, master.pid) != master.pid
        with contextlib.suppress(requests.RequestException):
            return restarted and requests.get(f"{up.url}/readyz", timeout=2).status_code == 200
        return False

    wait_for(web_back, 60, "a new gunicorn master answering behind the front")
    assert up.proc.poll() is None


def _redis_children(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [child for child in children if "redis-server" in " ".join(child.cmdline())]


@SQLITE_ONLY
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_command_ended_by_a_signal_stops_its_private_redis(
    settings: Settings, redis, tmp_path: Path, signum: int
):
    """`resync` waiting for a worker, with no REDIS_URL and no `up` running: it starts a Redis of its own."""
    from connector.sandbox.feeds import write_feed

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = process_env(settings, tmp_path, REDIS_URL="", TMPDIR=str(scratch), PYTHONUNBUFFERED="1")
    feed = write_feed(tmp_path / "feed.csv", 3)
    added = _storelink(env, "merchants", "add", "feed", "--name", "shop", "--url", str(feed), "--no-sync")
    assert added.returncode == 0, added.stderr
    assert not list(scratch.glob("storelink-redis-*"))  # the command cleaned up after itself

    storelink = Path(sys.executable).with_name("storelink")  # the installed command, as a user runs it
    with (tmp_path / "resync.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(storelink), "resync", "shop", "--timeout", "600"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    servers: list[psutil.Process] = []
    try:
        wait_for(lambda: "queued" in (tmp_path / "resync.log").read_text(), 60, "the run to be queued")
        servers = _redis_children(proc)
        assert len(servers) == 1 and list(scratch.glob("storelink-redis-*"))

        proc.send_signal(signum)
        code = proc.wait(timeout=30)

        assert code == 128 + signum, (tmp_path / "resync.log").read_text()
        _, alive = psutil.wait_procs(servers, timeout=10)
        assert not alive, "the private Redis outlived the command"
        assert not list(scratch.glob("storelink-redis-*")), "the temporary folder was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for server in servers:
            with contextlib.suppress(psutil.NoSuchProcess):
                server.kill()


@SQLITE_ONLY
def test_up_ended_by_sighup_stops_everything_it_started(settings: Settings, tmp_path: Path):
    """`up` with no REDIS_URL: its private Redis, web app, workers and run file all go with it."""
    env = process_env(settings, tmp_path, REDIS_URL="")
    port = free_port()
    with (tmp_path / "up.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "up", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started: list[psutil.Process] = []
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, 90, "storelink up to be ready")
        started = psutil.Process(proc.pid).children(recursive=True)
        assert any("redis-server" in " ".join(p.cmdline()) for p in started)

        proc.send_signal(signal.SIGHUP)
        code = proc.wait(timeout=60)

        assert code == 128 + signal.SIGHUP, (tmp_path / "up.log").read_text()
        _, alive = psutil.wait_procs(started, timeout=15)
        assert not alive, f"left running: {[p.pid for p in alive]}"
        assert not (Path(env["DATA_DIR"]) / "run" / "redis.url").exists()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
