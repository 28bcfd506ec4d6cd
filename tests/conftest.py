"""Shared fixtures: a private database per test (SQLite always, PostgreSQL when TEST_DATABASE_URL is set) and
a Redis database of the suite's own (TEST_REDIS_URL, else db 13 of a local Redis, else a private server)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import socketserver
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from argon2 import PasswordHasher
from argon2 import profiles as argon2_profiles
from cryptography.fernet import Fernet
from redis import Redis
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool
from werkzeug.routing.rules import Rule
from werkzeug.serving import BaseWSGIServer

from config.settings import Settings, load_settings
from connector.infra import runtime
from connector.infra.db import make_engine
from connector.infra.migrate import upgrade
from connector.merchants import users

TEST_REDIS_DBS = range(13, 0, -1)  # databases the suite may take on a shared local Redis, 13 first
CLAIMS_DB = 14  # where sessions claim them: a test that empties its own database (FLUSHDB) keeps its claim
CLAIM_KEY = "storelink:test-session"  # also set in the claimed database itself, for the sessions' eyes
CLAIM_SECONDS = 6 * 3600
SESSION = uuid.uuid4().hex

pytest_plugins = ["tests.fixtures"]  # app, client, api_client, runner, cli


def _claim_key(db: int) -> str:
    return f"storelink:test-claim:{db}"


def _claim_local_redis() -> str | None:
    """A database of the local Redis that no other test session holds: claimed atomically in CLAIMS_DB,
    and only where the database's own claim key names no other session."""
    try:
        claims = Redis.from_url(f"redis://127.0.0.1:6379/{CLAIMS_DB}", socket_connect_timeout=0.5)
        for db in TEST_REDIS_DBS:
            url = f"redis://127.0.0.1:6379/{db}"
            if not claims.set(_claim_key(db), SESSION, nx=True, ex=CLAIM_SECONDS):
                continue
            conn = Redis.from_url(url, socket_connect_timeout=0.5)
            if (
                conn.set(CLAIM_KEY, SESSION, nx=True, ex=CLAIM_SECONDS)
                or conn.get(CLAIM_KEY) == SESSION.encode()
            ):
                return url
            claims.delete(_claim_key(db))
    except Exception:
        return None
    return None


def _release_local_redis(url: str) -> None:
    """Empty the claimed database (what this session left, and its claim) and give the claim back."""
    db = int(url.rsplit("/", 1)[1])
    Redis.from_url(url).flushdb()
    claims = Redis.from_url(f"redis://127.0.0.1:6379/{CLAIMS_DB}")
    if claims.get(_claim_key(db)) == SESSION.encode():
        claims.delete(_claim_key(db))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests (processes, servers) first: with several workers the long ones start at once instead of
    leaving one worker busy at the end while the others wait. Of them, a group that runs in one test process
    (`xdist_group`, the benchmarks' tests, one after another) starts first: it is the longest chain."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("xdist_group") is None,
            item.get_closest_marker("slow") is None,
        )
    )


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
def _cheap_password_hashes() -> Iterator[None]:
    """Console passwords are hashed with argon2's cheapest parameters in this process (the algorithm and its
    checks unchanged): sign-in tests hash hundreds of times, at tens of milliseconds each with the defaults.
    Servers the tests start as processes keep the defaults."""
    cheapest = PasswordHasher.from_parameters(argon2_profiles.CHEAPEST)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "_hasher", cheapest)
        yield


@pytest.fixture(scope="session", autouse=True)
def _quick_server_shutdown() -> Iterator[None]:
    """In-process HTTP servers (store emulators, feed servers, served apps) look for a shutdown request every
    50 ms instead of every 0.5 s, so stopping one at the end of a test costs no half-second wait."""
    with pytest.MonkeyPatch.context() as patch:
        for server in (socketserver.BaseServer, BaseWSGIServer):
            patch.setattr(server.serve_forever, "__defaults__", (SERVER_POLL_SECONDS,))
        yield


BuilderKey = tuple[str, bool, tuple[tuple[bool, str], ...], tuple[str, ...]]


@pytest.fixture(scope="session", autouse=True)
def _shared_url_builders() -> Iterator[None]:
    """Each web app made in this process compiles the URL builders of its rules once per rule text instead of
    once per app: werkzeug generates and compiles two Python functions per rule, most of the cost of
    `create_app`, which hundreds of tests call. A builder reads everything else from the rule it is bound to;
    a rule with a default for one of its own variables (baked into the code) is compiled as usual."""
    compile_builder = Rule._compile_builder
    builders: dict[BuilderKey, Callable[..., tuple[str, str]]] = {}

    def shared(rule: Rule, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        defaults = rule.defaults or {}
        if any(dynamic and data in defaults for dynamic, data in rule._trace):
            return compile_builder(rule, append_unknown)
        key = (rule.rule, append_unknown, tuple(rule._trace), tuple(map(str, defaults)))
        if key not in builders:
            builders[key] = compile_builder(rule, append_unknown)
        return builders[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rule, "_compile_builder", shared)
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
        _release_local_redis(url)
        return
    from connector.infra.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    """The session's Redis database, emptied before and after the test (the session's claim kept)."""
    conn = Redis.from_url(redis_url)
    _empty_keeping_claim(conn)
    yield conn
    _empty_keeping_claim(conn)
    conn.close()


def _empty_keeping_claim(conn: Redis) -> None:
    """FLUSHDB and the claim set again in one MULTI: another session looking for a free database never sees
    this one unclaimed in between (it would take it, and the two would empty each other's keys)."""
    with conn.pipeline(transaction=True) as pipe:
        pipe.flushdb()
        pipe.set(CLAIM_KEY, SESSION, ex=CLAIM_SECONDS)
        pipe.execute()


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


FINGERPRINT = """
SELECT 'column', c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
       || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'object', relkind::text || ' ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
UNION ALL SELECT 'type', typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
UNION ALL SELECT 'function', proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL SELECT 'trigger', tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'schema', nspname FROM pg_namespace
UNION ALL SELECT 'setting', array_to_string(setconfig, ',') FROM pg_db_role_setting
  WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL SELECT 'revision', version_num FROM alembic_version
"""
"""Everything of a database a test could change besides its rows: equal to the template's, the database is
reused once its rows are deleted."""

USED_TABLES = """
SELECT quote_ident(relname) FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND pg_relation_size(oid) > 0
"""
"""Tables that may hold rows: a table copied empty from the template has no page until a row is written."""

USED_SEQUENCES = """
SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL
"""
"""Sequences read since they were made or last restarted."""


def _fingerprint(conn: Connection) -> str:
    """FINGERPRINT's rows in order, digested by the server (thousands of rows need not cross the wire)."""
    rows = f"SELECT kind || ' ' || coalesce(value, '(null)') AS row FROM ({FINGERPRINT}) f(kind, value)"
    digest = f"SELECT md5(string_agg(row, E'\\n' ORDER BY row)) FROM ({rows}) r"
    return str(conn.scalar(text(digest)))


class PostgresDatabases:
    """Each test's own database, copied from the migrated template. A used database whose schema is still the
    template's is renamed and emptied (rows deleted, sequences restarted) for the next test instead of being
    dropped: DROP DATABASE forces a checkpoint, which on a busy server costs a second or more per test."""

    def __init__(self, admin_url: str, template: str) -> None:
        self._admin_url, self._template = admin_url, template
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._free: list[str] = []
        self._made: list[str] = []
        self._template_print = self._fingerprint(template)

    def _engine(self, name: str) -> Engine:
        return create_engine(
            _with_database(self._admin_url, name), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )

    def _fingerprint(self, name: str) -> str:
        engine = self._engine(name)
        try:
            with engine.connect() as conn:
                return _fingerprint(conn)
        finally:
            engine.dispose()

    @staticmethod
    def _new_name() -> str:
        return f"storelink_t_{uuid.uuid4().hex[:12]}"

    def _create(self) -> str:
        name = self._new_name()
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}" STRATEGY WAL_LOG'))
        self._made.append(name)
        return name

    def _rename(self, name: str) -> str:
        """`name` under a new name: anything of the last test still trying its URL finds no database."""
        new = self._new_name()
        with self._admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
            conn.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{new}"'))
        self._made[self._made.index(name)] = new
        return new

    def _empty(self, name: str) -> bool:
        """Empty `name` for reuse; False when its schema is no longer the template's (or it cannot be).
        Only tables that ever held a row (their file has a page) are emptied, and only sequences that were
        used are restarted: a test touches a few of them."""
        engine = self._engine(name)
        try:
            with engine.connect() as conn:
                if _fingerprint(conn) != self._template_print:
                    return False
                conn.execute(text("SET lock_timeout = '5s'"))
                tables = conn.scalars(text(USED_TABLES)).all()
                sequences = conn.scalars(text(USED_SEQUENCES)).all()
                statements = ["SET LOCAL session_replication_role = replica"]  # rows in any order
                statements += [f"DELETE FROM {table}" for table in tables if table != "alembic_version"]
                statements += [f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences]
                conn.execute(text("; ".join(statements)))  # one transaction: DELETE writes no new files
            return True
        finally:
            engine.dispose()

    def _drop(self, name: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._made.remove(name)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """The URL of an empty, migrated database of our own for one test."""
        name = self._free.pop() if self._free else self._create()
        try:
            yield _with_database(self._admin_url, name)
        finally:
            try:
                name = self._rename(name)
                reusable = self._empty(name)
            except Exception:
                logging.getLogger(__name__).warning("test database %s not reusable", name, exc_info=True)
                reusable = False
            if reusable:
                self._free.append(name)
            else:
                self._drop(name)

    def close(self) -> None:
        for name in list(self._made):
            self._drop(name)
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases(postgres_template: tuple[str, str]) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(*postgres_template)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: one run per backend (a copy of the session's migrated template)."""
    if request.param == "sqlite":
        path = tmp_path / "storelink.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    with databases.database() as url:
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
    from connector.affiliates import ledger
    from connector.showcases import events as showcase_events
    from webhooks.outbound import delivery, fanout

    ledger.uninstall()
    showcase_events.uninstall()
    fanout.uninstall()
    delivery.configure()
