"""Schema migrations: `storelink db upgrade` runs Alembic to head on the configured database.

Every command and process start checks the schema; a database already at HEAD_REVISION is recognised from its
`alembic_version` row alone, without importing Alembic or reading the migration scripts (together a quarter of
a second of each command's start), which are loaded only when there is something to run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION: Final = "0014"
"""The newest revision in `migrations/versions` (a test checks it against Alembic's own reading)."""


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # loaded only when migrations run: see the module's docstring

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run again (a no-op at head)."""
    if revision == "head" and _stamped_revision(engine) == HEAD_REVISION:
        logger.debug("database at head", extra={"revision": HEAD_REVISION, "backend": engine.dialect.name})
        return
    from alembic import command

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


def _stamped_revision(engine: Engine) -> str | None:
    """The revision in `alembic_version`, or None when there is none (no table yet, or more than one row)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return None
    return str(rows[0]) if len(rows) == 1 else None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
