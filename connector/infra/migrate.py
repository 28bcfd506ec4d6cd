"""Schema migrations: `storelink db upgrade` runs Alembic to head on the configured database."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run again (a no-op at head)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with _foreign_keys_deferred(engine) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    logger.info("database upgraded", extra={"revision": revision, "backend": engine.dialect.name})


@contextlib.contextmanager
def _foreign_keys_deferred(engine: Engine) -> Iterator[Connection]:
    """A connection on which SQLite does not enforce foreign keys while migrations run, checked after.

    A batch migration rebuilds a SQLite table (create, copy, drop, rename); with foreign keys enforced,
    dropping the old table would delete every child row through ON DELETE CASCADE. The pragma only takes
    effect outside a transaction, so it is set on the driver's connection before the migration's BEGIN.
    """
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            yield conn
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            yield conn
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left {len(broken)} rows with dangling foreign keys")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
