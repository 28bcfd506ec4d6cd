"""Start-up checks of the CLI: one `storelink up` per DATA_DIR, its web port free, the database and Redis
reachable. Each failure is a StartupError whose one-line message names the setting or the cause, so that a
command exits at once with that line instead of a traceback, or a web server that restarts forever."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from connector.domain.errors import StorelinkError

logger = logging.getLogger(__name__)

UP_LOCK_NAME = "up.lock"
REDIS_CHECK_TIMEOUT = 3.0


class StartupError(StorelinkError):
    """A command cannot start: another instance, a taken port, an unreachable database or Redis."""

    code = "startup"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def redacted_url(url: str) -> str:
    """`url` with its password replaced by ***, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_redis(url: str, setting: str = "REDIS_URL") -> None:
    """PING the Redis at `url` once, without client-side retries."""
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CHECK_TIMEOUT,
        socket_timeout=REDIS_CHECK_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StartupError(
            f"cannot reach Redis at {setting} ({redacted_url(url)}): {_first_line(exc)}",
            code="redis_unreachable",
        ) from None
    finally:
        client.close()


@contextlib.contextmanager
def database_errors(engine: Engine, setting: str = "DATABASE_URL") -> Iterator[None]:
    """Turn a database that cannot be reached or opened (while connecting or migrating) into a StartupError."""
    try:
        yield
    except DBAPIError as exc:
        cause = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
        raise StartupError(
            f"cannot use the database at {setting} ({engine.url.render_as_string(hide_password=True)}): {cause}",
            code="database_unreachable",
        ) from None
    except (SQLAlchemyError, OSError) as exc:
        raise StartupError(
            f"cannot use the database at {setting} ({engine.url.render_as_string(hide_password=True)}): "
            f"{_first_line(exc)}",
            code="database_unreachable",
        ) from None


def check_port_free(host: str, port: int) -> None:
    """Bind `host:port` the way gunicorn will (SO_REUSEADDR) and let go again; taken or unbindable: an error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot bind the web app to {host!r}: {exc.strerror}", code="bad_address"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {host} is already in use; stop what listens there, "
                    "or choose another port with --port or WEB_PORT",
                    code="port_in_use",
                ) from None
            raise StartupError(
                f"cannot bind the web app to {host}:{port}: {exc.strerror}", code="bad_address"
            ) from None


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a process that listens only behind another)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class InstanceLock:
    """An exclusive lock on DATA_DIR/run/up.lock, held by one `storelink up` for its whole run; the file
    names the holder's pid. The kernel lets go of it when the process ends, however it ends."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "run" / UP_LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parents[1].mkdir(parents=True, exist_ok=True, mode=0o700)  # DATA_DIR, if new: private
        self.path.parent.mkdir(exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StartupError(
                f"another `storelink up` (pid {holder}) is running with DATA_DIR {self.path.parents[1]}; "
                "stop it first, or give this one another DATA_DIR",
                code="already_running",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.truncate(0)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
