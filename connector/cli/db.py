"""`storelink db` and `storelink keys`: the database schema and the keys that encrypt stored credentials."""

from __future__ import annotations

import logging

import click

from connector.cli.common import Context, console, pass_ctx
from connector.infra import migrate
from connector.infra.crypto import SecretBox
from connector.infra.db import Database
from connector.merchants import records as merchants_core
from connector.merchants.records import rotate_credentials

logger = logging.getLogger(__name__)


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(obj: Context) -> None:
    """Apply migrations up to the newest schema."""
    from connector.infra.db import Database

    database = Database.from_settings(obj.settings)
    migrate.upgrade(database.engine)
    console.print(f"database at revision {migrate.current_revision(database.engine)}")
    moved = _seal_config_secrets(database, SecretBox.from_settings(obj.settings))
    if moved:
        console.print(
            f"{moved} merchant(s): feed URL query strings and credentials moved to encrypted storage"
        )
    database.dispose()


def _seal_config_secrets(database: Database, box: SecretBox) -> int:
    """Merchants stored with secrets in their config (a feed URL's query string) get them moved into their
    encrypted credentials; how many changed."""
    with database.session() as session:
        return merchants_core.seal_config_secrets(session, box)


@click.group()
def keys() -> None:
    """Encryption keys for stored credentials."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key (prepend it to SECRET_KEYS to rotate)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@keys.command("rotate")
@pass_ctx
def keys_rotate(obj: Context) -> None:
    """Re-encrypt every stored credential under the first key in SECRET_KEYS."""
    from connector.infra.db import Database

    database = Database.from_settings(obj.settings)
    migrate.upgrade(database.engine)
    from connector.infra.crypto import SecretBox

    with database.session() as session:
        count = rotate_credentials(session, SecretBox.from_settings(obj.settings))
    console.print(f"re-encrypted {count} credential set(s)")
