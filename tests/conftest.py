"""Shared fixtures: a private database per test (SQLite always, PostgreSQL when TEST_DATABASE_URL is set) and
a Redis database of the suite's own (TEST_REDIS_URL, else db 13 of a local Redis, else a private server)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socketserver
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cryptography.fernet import Fernet
from redis import Redis
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool
from werkzeug.serving import BaseWSGIServer

from config.settings import Settings, load_settings
from connector import runtime
from connector.db import make_engine
from connector.migrate import upgrade

TEST_REDIS_DBS = range(13, 0, -1)  # databases the suite may take on a shared local Redis, 13 first
CLAIM_KEY = "storelink:test-session"
SESSION = uuid.uuid4().hex

pytest_plugins = ["tests.fixtures"]  # app, client, api_client, runner, cli


def _claim_local_redis() -> str | None:
    """A database of the local Redis that no other test session holds (the claim key marks it ours)."""
    for db in TEST_REDIS_DBS:
        url = f"redis://127.0.0.1:6379/{db}"
        try:
            conn = Redis.from_url(url, socket_connect_timeout=0.5)
            if conn.set(CLAIM_KEY, SESSION, nx=True, ex=6 * 3600) or conn.get(CLAIM_KEY) == SESSION.encode():
                return url
        except Exception:
            return None
    return None


PR_SET_CHILD_SUBREAPER = 36
STRAY_GRACE_SECONDS = 10.0


def _adopt_orphans() -> None:
    """Make this pytest process the subreaper of everything it starts (Linux): a process whose parent died
    is re-parented here instead of to init, so it still counts as one of this session's descendants."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


# Helpers of this interpreter's multiprocessing (started by spawn contexts); they end when pytest does.
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _live_descendants() -> list[psutil.Process]:
    alive = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            helper = any(name in " ".join(proc.cmdline()) for name in INTERPRETER_HELPERS)
            if proc.status() != psutil.STATUS_ZOMBIE and not helper:
                alive.append(proc)
    return alive


@pytest.fixture(scope="session", autouse=True)
def _no_stray_processes() -> Iterator[None]:
    """No process started by this session's tests (or by the processes they start) outlives the session.
    Only descendants of this pytest process count, so other sessions on the machine never trip it."""
    _adopt_orphans()
    yield
    deadline = time.monotonic() + STRAY_GRACE_SECONDS
    while (strays := _live_descendants()) and time.monotonic() < deadline:
        time.sleep(0.2)
    described = []
    for proc in strays:
        with contextlib.suppress(psutil.NoSuchProcess):
            described.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
    assert not described, "processes left running by the tests:\n" + "\n".join(described)


SERVER_POLL_SECONDS = 0.05


@pytest.fixture(scope="session", autouse=True)
def _quick_server_shutdown() -> Iterator[None]:
    """In-process HTTP servers (store emulators, feed servers, served apps) look for a shutdown request every
    50 ms instead of every 0.5 s, so stopping one at the end of a test costs no half-second wait."""
    with pytest.MonkeyPatch.context() as patch:
        for server in (socketserver.BaseServer, BaseWSGIServer):
            patch.setattr(server.serve_forever, "__defaults__", (SERVER_POLL_SECONDS,))
        yield


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    url = _claim_local_redis()
    if url:
        yield url
        conn = Redis.from_url(url)
        conn.flushdb()  # what this session left, and its claim
        conn.close()
        return
    from connector.embedded import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    """The session's Redis database, emptied before and after the test (the session's claim kept)."""
    conn = Redis.from_url(redis_url)
    conn.flushdb()
    conn.set(CLAIM_KEY, SESSION, ex=6 * 3600)
    yield conn
    conn.flushdb()
    conn.set(CLAIM_KEY, SESSION, ex=6 * 3600)
    conn.close()


BACKENDS = ["sqlite", "postgresql"]


def normalize_pg(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _with_database(url: str, name: str) -> str:
    """`url` (a PostgreSQL URL) pointing at database `name` instead."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test gets a copy (migrating takes seconds)."""
    path = tmp_path_factory.mktemp("template") / "storelink.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copy must hold every page
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str]]:
    """(admin URL, template database name): a database migrated to head once per session, from which each
    test's database is made with CREATE DATABASE ... TEMPLATE, and dropped when the session ends."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL not set")
    admin_url = normalize_pg(base)
    template = f"storelink_tpl_{SESSION[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{template}"'))
    try:
        engine = make_engine(_with_database(admin_url, template))
        upgrade(engine)
        engine.dispose()
        yield admin_url, template
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str, template: str) -> Iterator[str]:
    """A database of our own copied from the migrated template, dropped afterwards."""
    name = f"storelink_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY WAL_LOG'))
    try:
        yield _with_database(admin_url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: one run per backend (a copy of the session's migrated template)."""
    if request.param == "sqlite":
        path = tmp_path / "storelink.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin_url, template = request.getfixturevalue("postgres_template")
    with postgres_database(admin_url, template) as url:
        yield url


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        secret_keys=Fernet.generate_key().decode(),
        log_json=False,
        sync_batch_size=200,
        stale_after_seconds=2,
        feed_allow_files=True,
        feed_allow_private_urls=True,  # feed servers of tests listen on loopback
    )


@pytest.fixture
def rt(settings: Settings, redis: Redis) -> Iterator[runtime.Runtime]:
    instance = runtime.install(runtime.Runtime(settings=settings, redis_url=settings.redis_url))
    yield instance
    instance.close()
    runtime._current = None


@pytest.fixture(autouse=True)
def _no_leftover_subscribers() -> Iterator[None]:
    """A test that wires outbound webhooks (create_app, wire_outbound) leaves no subscriber behind."""
    yield
    from webhooks.outbound import delivery, fanout

    fanout.uninstall()
    delivery.configure()
