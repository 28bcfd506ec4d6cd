"""`storelink users`: the people who sign in to the web console (support, or merchants with their merchants)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from connector.cli.common import Context, _errors, _print_rows, console, pass_ctx
from connector.merchants import users as console_users

logger = logging.getLogger(__name__)


@click.group()
def users() -> None:
    """Console users: add, list and remove."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.UsageError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(console_users.ROLES), required=True)
@click.option(
    "--merchant",
    "merchants",
    multiple=True,
    help="A merchant (id or name) the user may see; repeatable; merchant users only.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@pass_ctx
def users_add(obj: Context, email: str, role: str, merchants: tuple[str, ...], password_stdin: bool) -> None:
    """Add a console user; the password is prompted for (or read with --password-stdin)."""
    password = _password(password_stdin)
    with _errors(), obj.rt.db.session() as session:
        user = console_users.create_user(session, email, password, role, merchants)
        shown = f"user {user.id} {user.email} added ({role}"
    console.print(shown + (f": {', '.join(merchants)})" if merchants else ")"), highlight=False)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def users_list(obj: Context, as_json: bool) -> None:
    """List console users with their role and merchants."""
    with obj.rt.db.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role,
                "merchants": u.merchants,
                "signed_in_at": u.signed_in_at.isoformat() if u.signed_in_at else None,
            }
            for u in console_users.list_users(session)
        ]
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("email", "email"),
            ("role", "role"),
            ("merchants", "merchants"),
            ("last sign-in", "signed_in_at"),
        ],
        empty="no console users (add one with `storelink users add EMAIL --role support`)",
    )


@users.command("remove")
@click.argument("email")
@pass_ctx
def users_remove(obj: Context, email: str) -> None:
    """Remove a console user; its open sessions end at their next request."""
    with _errors(), obj.rt.db.session() as session:
        console_users.remove_user(session, email)
    console.print(f"user {console_users.normalize_email(email)} removed", highlight=False)
