"""Database engine and sessions: one engine per process, SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings

logger = logging.getLogger(__name__)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


DEAD_PEER_SECONDS = 60.0
"""How long a PostgreSQL connection outlives a peer it cannot reach, unless told otherwise (the default lease)."""


def dead_peer_args(url: str, seconds: float) -> dict[str, Any]:
    """PostgreSQL connection arguments that end a connection within about `seconds` once its peer is out of
    reach (a host cut off, a cable pulled), on both ends.

    TCP keepalives are asked of the client (libpq's `keepalives_*`) and, through `options`, of the server
    (`tcp_keepalives_*`), with `tcp_user_timeout` for data sent and never acknowledged. Without them the
    server keeps the session of a worker cut off mid-transaction, with its row locks, for as long as the
    kernel's default keepalive (two hours): every worker that touches those rows waits for it, long after the
    cut-off worker's lease has run out and its work was meant to be taken over. Probes are answered by the
    peer's kernel, so a busy but reachable worker never loses its connection. What the URL sets is kept."""
    query = make_url(url).query
    idle = max(1, int(seconds // 4))
    interval = max(1, int(seconds // 8))
    count = 3
    user_timeout_ms = max(1000, int(seconds * 1000))
    args: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
    }
    args = {key: value for key, value in args.items() if key not in query}
    server = (
        f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
        f"-c tcp_keepalives_count={count} -c tcp_user_timeout={user_timeout_ms}"
    )
    given = query.get("options")
    args["options"] = f"{server} {given if isinstance(given, str) else ' '.join(given)}" if given else server
    return args


def make_engine(
    url: str, *, autocommit: bool = False, dead_peer_seconds: float = DEAD_PEER_SECONDS, **kwargs: Any
) -> Engine:
    """Create an engine with the settings each backend needs for concurrent workers.

    `autocommit`: every statement is its own transaction, committed as it runs (one round trip for a
    single-row write on PostgreSQL instead of four); pool pre-ping is left out, so callers retry a
    statement once on a dropped connection (`Database.autocommit_execute`). `dead_peer_seconds`: how long a
    PostgreSQL connection outlives a peer out of reach (`dead_peer_args`)."""
    if autocommit:
        kwargs.setdefault("isolation_level", "AUTOCOMMIT")
    kwargs.setdefault("json_serializer", _json)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            _private_sqlite_file(Path(path))
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Writers take the lock at BEGIN, so two processes never deadlock upgrading a read lock.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        if not autocommit:

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No server-side prepared statements: a plan cached while a merchant's tables were small (a first sync
    # fills them) would keep scanning them whole after they grew.
    connect_args: dict[str, Any] = {"prepare_threshold": None} if "+psycopg" in url else {}
    if url.startswith("postgresql"):
        connect_args.update(dead_peer_args(url, dead_peer_seconds))
    return create_engine(
        url, pool_pre_ping=not autocommit, pool_size=5, max_overflow=5, connect_args=connect_args, **kwargs
    )


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds buyers' personal data); SQLite gives its
    WAL and shared-memory files the database file's mode. A file left group- or world-readable by an older
    version is narrowed too, with its WAL and shared-memory files."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
                logger.info("narrowed SQLite file to owner-only access", extra={"path": str(file)})


class _Held(threading.local):
    """A thread's kept connection of the autocommit engine, and the process that opened it."""

    conn: Any = None
    pid: int = 0


class Database:
    """The process's engine and session factory, built lazily from settings."""

    def __init__(self, url: str, *, dead_peer_seconds: float = DEAD_PEER_SECONDS):
        self.url = url
        self.dead_peer_seconds = dead_peer_seconds
        self._held = _Held()
        self.engine = make_engine(url, dead_peer_seconds=dead_peer_seconds)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        # A worker out of reach for longer than its lease loses its sessions, and with them its row locks, as
        # it loses its leases: the work taken over from it is not held up by what it had locked.
        return cls(settings.effective_database_url, dead_peer_seconds=settings.stale_after_seconds)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def writer_turn(self) -> Iterator[None]:
        """SQLite file: wait for the database's write turn on a file lock (woken as soon as the holder lets
        go) before BEGIN IMMEDIATE, instead of in SQLite's busy handler, which sleeps up to 100 ms between
        tries while another process writes. Other databases wait on their own locks: nothing to do."""
        path = self._lock_path
        if path is None:
            yield
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # lets the lock go

    @cached_property
    def _lock_path(self) -> str | None:
        if not self.is_sqlite or "///" not in self.url:
            return None
        path = self.url.split("///", 1)[1].split("?", 1)[0]
        return None if not path or path == ":memory:" or path.startswith("file:") else path + "-writer.lock"

    @cached_property
    def autocommit_engine(self) -> Engine:
        """For single statements that must be durable at once and cheap: the webhook intake."""
        return make_engine(self.url, autocommit=True, dead_peer_seconds=self.dead_peer_seconds)

    def autocommit_execute(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """Run one statement in its own transaction; a connection the server dropped is retried once."""
        for attempt in (1, 2):
            try:
                with self.autocommit_engine.connect() as conn:
                    return conn.execute(statement, params).scalar()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def fast_insert(self, sql: str, params: Any) -> Any:
        """Run one statement already compiled for this dialect (`connector.infra.bulk_insert.prepare`) with the driver's
        parameters, committed at once, on a connection of the autocommit engine that the calling thread
        keeps; returns the first column of the first row, if any. A connection the server dropped is
        replaced and the statement retried once."""
        for attempt in (1, 2):
            held = self._held
            if held.conn is None or held.pid != os.getpid():
                held.conn, held.pid = self.autocommit_engine.raw_connection(), os.getpid()
            conn = held.conn
            cursor = None
            try:
                cursor = conn.cursor()
                cursor.execute(sql, params)
                first = cursor.fetchone()
            except self.autocommit_engine.dialect.loaded_dbapi.Error as exc:
                if not self.autocommit_engine.dialect.is_disconnect(exc, conn, cursor):
                    raise
                held.conn = None
                conn.invalidate(exc)
                if attempt == 2:
                    raise
                continue
            finally:
                if cursor is not None:
                    with contextlib.suppress(Exception):  # a cursor of a dropped connection
                        cursor.close()
            return first[0] if first else None
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        held = self._held
        if held.conn is not None and held.pid == os.getpid():
            held.conn.close()
        held.conn = None
        self.engine.dispose()
        if "autocommit_engine" in self.__dict__:
            self.autocommit_engine.dispose()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connections without closing them (they stay the parent's)."""
        self._held = _Held()
        self.engine.dispose(close=False)
        if "autocommit_engine" in self.__dict__:
            self.autocommit_engine.dispose(close=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"
