"""`storelink clients`: platform API clients and their API keys."""

from __future__ import annotations

import logging

import click
from rich.table import Table

from connector.cli.common import Context, _errors, console, pass_ctx

logger = logging.getLogger(__name__)


@click.group()
def clients() -> None:
    """Platform API clients and their API keys."""


@clients.command("add")
@click.argument("name")
@pass_ctx
def clients_add(obj: Context, name: str) -> None:
    """Create a client; its API key is printed once (only a hash is kept)."""
    from connector.merchants import clients as service

    with _errors(), obj.rt.db.session() as session:
        client, key = service.create_client(session, name)
        client_id = client.id
    console.print(f"client {client_id} ({name}) added; API key (shown once): {key}", highlight=False)


@clients.command("list")
@pass_ctx
def clients_list(obj: Context) -> None:
    """List clients."""
    from connector.merchants import clients as service

    table = Table("id", "name", "active", "created")
    with obj.rt.db.session() as session:
        for c in service.list_clients(session):
            table.add_row(str(c.id), c.name, str(c.active), c.created_at.isoformat(timespec="seconds"))
    console.print(table)


def _invalidate_keys(obj: Context) -> None:
    """Have every web process drop its cached key lookups; say so when Redis did not answer."""
    from connector.api.common import KEY_CACHE_SECONDS
    from connector.merchants import clients as service

    if not service.invalidate_cached_keys(obj.rt.redis):
        console.print(
            f"warning: Redis did not answer, so web processes may accept the old key for up to "
            f"{KEY_CACHE_SECONDS:g} seconds",
            highlight=False,
        )


@clients.command("rotate-key")
@click.argument("client_id", type=int)
@pass_ctx
def clients_rotate(obj: Context, client_id: int) -> None:
    """Replace a client's API key (the old one stops working at once); the new key is printed once."""
    from connector.merchants import clients as service

    with _errors(), obj.rt.db.session() as session:
        _, key = service.rotate_key(session, client_id)
    _invalidate_keys(obj)
    console.print(f"new API key (shown once): {key}", highlight=False)


@clients.command("deactivate")
@click.argument("client_id", type=int)
@pass_ctx
def clients_deactivate(obj: Context, client_id: int) -> None:
    """Refuse a client's API key from now on (at once); its merchants, orders and endpoints are kept."""
    from connector.merchants import clients as service

    with _errors(), obj.rt.db.session() as session:
        name = service.deactivate(session, client_id).name
    _invalidate_keys(obj)
    console.print(f"client {client_id} ({name}) deactivated; its API key is refused", highlight=False)


@clients.command("remove")
@click.argument("client_id", type=int)
@pass_ctx
def clients_remove(obj: Context, client_id: int) -> None:
    """Delete a client that holds no merchants, orders or webhook endpoints (else deactivate it)."""
    from connector.merchants import clients as service

    with _errors(), obj.rt.db.session() as session:
        name = service.remove(session, client_id)
    _invalidate_keys(obj)
    console.print(f"client {client_id} ({name}) removed", highlight=False)
