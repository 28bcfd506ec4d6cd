"""`storelink merchants`: connect stores, link them to platform clients, list and show them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from sqlalchemy.orm import Session

from connector.catalog import syncs
from connector.cli.common import TERMINAL, Context, _errors, _print_rows, console, err, pass_ctx
from connector.cli.problems import describe
from connector.domain import registry
from connector.domain.errors import StorelinkError
from connector.domain.ports import ConnectFlow, ConnectOption
from connector.infra import problems, runtime
from connector.infra.models import SyncRun
from connector.merchants import connect
from connector.merchants.records import create_merchant, get_merchant, list_merchants
from connector.support import ops

logger = logging.getLogger(__name__)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out[key.strip()] = value
    return out


@click.group()
def merchants() -> None:
    """Connected stores."""


def _connect_options() -> dict[str, tuple[ConnectOption, list[str]]]:
    """The connect options every installed adapter declares, by flag, with the kinds that declare them."""
    found: dict[str, tuple[ConnectOption, list[str]]] = {}
    for kind in registry.kinds():
        try:
            flow = connect.connect_flow(kind)
        except StorelinkError:
            continue
        for option in flow.connect_options if flow is not None else ():
            found.setdefault(option.flag, (option, []))[1].append(kind)
    return found


def _with_connect_options(command: Any) -> Any:
    """Add the adapters' declared connect options to `merchants add` (a pair `--x/--no-x` is a flag)."""
    for flag, (option, kinds) in reversed(list(_connect_options().items())):
        command = click.option(
            flag,
            option.dest,
            default=None,
            envvar=option.envvar,
            show_envvar=option.envvar is not None,
            help=option.help
            if option.help.startswith(tuple(kinds))
            else f"{', '.join(kinds)}: {option.help}",
        )(command)
    return command


@merchants.command("add")
@click.argument("kind")
@click.option("--name", required=True, help="Merchant name, unique and human-readable.")
@click.option("--url", default=None, help="Store or feed URL (feed: CSV/TSV/JSON URL or path).")
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE", help="Adapter setting (repeatable).")
@click.option("--credential", multiple=True, metavar="KEY=VALUE", help="Credential, stored encrypted.")
@click.option("--buffer", "inventory_buffer", default=0, type=int, help="Units held back from the platform.")
@click.option("--client", "platform_client", default=None, help="Platform client (id or name) it belongs to.")
@_with_connect_options
@click.option("--no-sync", is_flag=True, help="Do not queue the first full sync.")
@pass_ctx
def merchants_add(
    obj: Context,
    kind: str,
    name: str,
    url: str | None,
    settings_: tuple[str, ...],
    credential: tuple[str, ...],
    inventory_buffer: int,
    platform_client: str | None,
    no_sync: bool,
    **connect_values: Any,
) -> None:
    """Connect a store of KIND (installed: see `storelink merchants kinds`) and queue its first sync.

    A kind connected with keys takes the options its adapter declares: the keys are checked with
    the store at once (nothing is stored when it refuses them), what the store says about the seller is
    found, and notifications are subscribed at PUBLIC_URL."""
    cfg: dict[str, Any] = _pairs(settings_, "--set")
    if url:
        cfg["url"] = url
    with _errors():
        try:
            flow = connect.connect_flow(kind)
        except StorelinkError:
            flow = None  # an unknown kind: refused below, as any store it cannot make
    given = {dest: value for dest, value in connect_values.items() if value is not None}
    if flow is not None:
        _add_with_keys(
            obj,
            kind,
            flow,
            name=name,
            given=given,
            cfg=cfg,
            credentials=_pairs(credential, "--credential"),
            inventory_buffer=inventory_buffer,
            platform_client=platform_client,
            no_sync=no_sync,
        )
        return
    used = [
        (flag, kinds)
        for flag, (option, kinds) in _connect_options().items()
        if option.envvar is None and option.dest in given
    ]
    if used:
        owners = sorted({owner for _, kinds in used for owner in kinds})
        flags = ", ".join(flag for flag, _ in used)
        raise click.UsageError(f"{flags}: {', '.join(owners)} options, not for {kind}")
    rt = obj.rt
    with _errors():
        with rt.db.session() as session:
            owner = _platform_client_id(session, platform_client)
            merchant = create_merchant(
                session,
                rt.secrets,
                kind=kind,
                name=name,
                config=cfg,
                credentials=_pairs(credential, "--credential"),
                inventory_buffer=inventory_buffer,
                platform_client_id=owner,
            )
            merchant_id = merchant.id
        console.print(f"merchant {merchant_id} ({name}, {kind}) added")
        if not no_sync:
            run = syncs.request_sync(rt, merchant_id)
            console.print(f"full sync queued as run {run.id}")


def _platform_client_id(session: Session, ref: str | None) -> int | None:
    return None if ref is None else connect.find_platform_client(session, ref).id


def _setting_value(value: Any) -> Any:
    """A `--set` value as the adapter expects it: true/false as flags, numbers as numbers, else the text."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        number = json.loads(value)
    except ValueError:
        return value
    return number if isinstance(number, int | float) and not isinstance(number, bool) else value


def _add_with_keys(
    obj: Context,
    kind: str,
    flow: ConnectFlow,
    *,
    name: str,
    given: dict[str, Any],
    cfg: dict[str, Any],
    credentials: dict[str, str],
    inventory_buffer: int,
    platform_client: str | None,
    no_sync: bool,
) -> None:
    """`merchants add` of a kind whose adapter declares a connect flow."""
    for option in flow.connect_options:
        if given.get(option.dest):
            continue
        if option.required:
            raise click.UsageError(f"{kind} needs {option.flag}")
        if option.prompt:
            given[option.dest] = str(click.prompt(option.prompt, hide_input=option.secret, err=True))
    cfg = {key: _setting_value(value) for key, value in cfg.items()}
    rt = obj.rt
    with _errors():
        connected = connect.connect(
            rt,
            kind,
            name=name,
            fields=given,
            config=cfg,
            credentials=credentials,
            platform_client=platform_client,
            inventory_buffer=inventory_buffer,
            first_sync=not no_sync,
        )
    console.print(f"merchant {connected.merchant_id} ({name}, {kind} {connected.store_ref}) added")
    for line in connected.summary:
        console.print(line)
    if connected.event_types:
        console.print(f"notifications subscribed: {', '.join(connected.event_types)}")
    for warning in connected.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    if connected.sync_run_id is not None:
        console.print(f"full sync queued as run {connected.sync_run_id}")


@merchants.command("assign")
@click.argument("merchant")
@click.option("--client", "platform_client", required=True, help="Platform client (id or name).")
@pass_ctx
def merchants_assign(obj: Context, merchant: str, platform_client: str) -> None:
    """Link MERCHANT (id or name) to a platform client: that client's API reaches the merchant's data."""
    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        owner = _platform_client_id(session, platform_client)
        m.platform_client_id = owner
        merchant_id, merchant_name = m.id, m.name
    console.print(f"merchant {merchant_id} ({merchant_name}) linked to platform client {owner}")


@merchants.command("kinds")
def merchants_kinds() -> None:
    """List installed store kinds."""
    for kind in registry.kinds():
        click.echo(kind)


@merchants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def merchants_list(obj: Context, as_json: bool) -> None:
    """List merchants with their sync health."""
    rt = obj.rt
    with rt.db.session() as session:
        rows: list[dict[str, Any]] = []
        listed = problems.open_problems(session)
        for m in list_merchants(session):
            last = syncs.latest_run(session, m.id)
            titles = "; ".join(p.title for p in listed if p.merchant_id == m.id)
            rows.append(
                {
                    "id": m.id,
                    "name": m.name,
                    "kind": m.kind,
                    "status": m.status,
                    "store": m.store_ref,
                    "last_sync": last.status if last else None,
                    "last_sync_at": (last.finished_at or last.created_at).isoformat() if last else None,
                    "problem": m.problem or _run_problem(rt, last) or titles or None,
                }
            )
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("name", "name"),
            ("kind", "kind"),
            ("status", "status"),
            ("store", "store"),
            ("last sync", "last_sync"),
            ("problem", "problem"),
        ],
        empty="no merchants (connect one with `storelink merchants add`)",
    )


@merchants.command("show")
@click.argument("merchant")
@pass_ctx
def merchants_show(obj: Context, merchant: str) -> None:
    """Show one merchant (by id or name): its open problems and its recent sync runs of every kind."""
    rt = obj.rt
    with _errors(), rt.db.session() as session:
        m = get_merchant(session, merchant)
        console.print(f"[bold]{m.name}[/] (id {m.id}) {m.kind} {m.store_ref} — {m.status}")
        if m.problem:
            console.print(f"[red]problem:[/] {m.problem}")
        console.print(f"inventory buffer {m.inventory_buffer}, location {m.location_ref or 'default'}")
        showing = problems.open_problems(session, [m.id])
        for problem in showing:
            console.print(f"[red]problem:[/] {describe(problem)}", highlight=False)
            console.print(f"  what to do: {problem.action}", highlight=False)
        if not showing:
            console.print("no open problems")
        runs = syncs.list_runs(session, merchant_id=m.id, limit=10)
        if runs and runs[0].status not in TERMINAL:
            latest = runs[0]
            console.print(
                f"run {latest.id} {latest.status}: {syncs.waiting_for(rt, latest)}", highlight=False
            )
        console.print(_runs_table(runs) if runs else "no sync runs yet")


STUCK_AFTER = 60.0
"""Seconds a queued run may wait for its first worker before `merchants list` shows it as a problem."""


def _run_problem(rt: runtime.Runtime, run: SyncRun | None) -> str | None:
    """The problem column for a merchant whose last run is retrying after an error, or no worker took."""
    if run is None or run.status != "queued":
        return None
    waited = (datetime.now(UTC) - run.created_at).total_seconds()
    if not run.error and (waited < STUCK_AFTER or rt.queues.workers_on(run.queue)):
        return None
    return f"sync run {run.id} {syncs.waiting_for(rt, run)}"


def _runs_table(runs: Any) -> Table:
    table = Table(
        "run",
        "kind",
        "status",
        "rows",
        "total",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "failed rows",
        "events",
        "error",
        "details",
    )
    for r in runs:
        kind = f"{r.kind}{' (dry run)' if r.dry_run else ''}"
        table.add_row(
            str(r.id),
            kind,
            r.status,
            str(r.rows_read),
            "" if r.total is None else str(r.total),
            str(r.created),
            str(r.updated),
            str(r.unchanged),
            str(r.deleted),
            str(r.failed_rows),
            str(r.events_emitted),
            r.error or "",
            ops.describe_details(r.details),
        )
    return table
