"""`storelink commissions`: the commission ledger for support: list entries, show one with its history, export CSV.

Support sees every merchant's entries. A merchant is named by id or name; an unknown merchant or entry is a
one-line error and exit status 1. Times on the command line are ISO 8601 (UTC when they name no zone).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from connector.affiliates import export, reports
from connector.cli.common import Context, _errors, _print_rows, console, err, pass_ctx
from connector.merchants.records import get_merchant

logger = logging.getLogger(__name__)


def _time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _plain(value: Any) -> Any:
    """A report value as JSON would have it (times as ISO 8601 UTC text)."""
    if isinstance(value, datetime):
        return export.utc_text(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def row_dict(row: Any) -> dict[str, Any]:
    """A report dataclass as a JSON-ready dict."""
    plain: dict[str, Any] = _plain(dataclasses.asdict(row))
    return plain


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filters `list` and `export` share."""
    for option in reversed(
        (
            click.option("--merchant", default=None, help="Merchant id or name."),
            click.option("--creator", default=None, help="Only this creator's entries."),
            click.option("--state", type=click.Choice(reports.STATES), default=None),
            click.option("--kind", type=click.Choice(reports.KINDS), default=None),
            click.option("--since", default=None, help="Created at or after this ISO 8601 time."),
            click.option("--until", default=None, help="Created before this ISO 8601 time."),
        )
    ):
        command = option(command)
    return command


def _filters(
    obj: Context,
    merchant: str | None,
    creator: str | None,
    state: str | None,
    kind: str | None,
    since: str | None,
    until: str | None,
) -> reports.CommissionFilter:
    """The filters from the options; the merchant is looked up (an unknown one is an error)."""
    start, end = _time(since, "--since"), _time(until, "--until")
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("must be later than --since", param_hint="--until")
    merchant_id = None
    if merchant is not None:
        with _errors(), obj.rt.db.session() as session:
            merchant_id = get_merchant(session, merchant).id
    return reports.CommissionFilter(
        merchant_id=merchant_id, creator_ref=creator, state=state, kind=kind, since=start, until=end
    )


@click.group()
def commissions() -> None:
    """The commission ledger: entries by merchant, creator, state and period; one entry's history; CSV."""


@commissions.command("list")
@_filter_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def commissions_list(obj: Context, limit: int, as_json: bool, **options: Any) -> None:
    """Entries, newest first, then the totals per creator and currency of every entry matching the filters."""
    filters = _filters(obj, **options)
    with obj.rt.db.session() as session:
        rows, _ = reports.commissions(session, filters, None, limit=limit)
        totals = reports.commission_totals(session, filters, None)
    entries = [row_dict(row) | {"amount": export.major_units(row.amount_minor, row.currency)} for row in rows]
    _print_rows(
        entries,
        as_json,
        [
            ("id", "id"),
            ("created", "created_at"),
            ("merchant", "merchant_id"),
            ("creator", "creator_ref"),
            ("kind", "kind"),
            ("cause", "cause"),
            ("state", "state"),
            ("amount", "amount"),
            ("currency", "currency"),
            ("order", "order_id"),
        ],
        empty="no commissions found",
    )
    if as_json or not totals:
        return
    table = Table("creator", "currency", "pending", "approved", "paid", "balance", "entries", title="totals")
    for total in totals:
        table.add_row(
            total.creator_ref,
            total.currency,
            *(
                export.major_units(amount, total.currency)
                for amount in (
                    total.pending_minor,
                    total.approved_minor,
                    total.paid_minor,
                    total.balance_minor,
                )
            ),
            str(total.entries),
        )
    console.print(table)


@commissions.command("show")
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def commissions_show(obj: Context, entry_id: str, as_json: bool) -> None:
    """One entry with its order, line, link and program, the entries reversing it, and its history."""
    with _errors(), obj.rt.db.session() as session:
        detail = reports.commission_detail(session, entry_id, None)
    if as_json:
        click.echo(json.dumps(row_dict(detail)))
        return
    entry = detail.entry
    facts = Table("field", "value", show_header=False)
    for name, value in (
        ("id", entry.id),
        ("kind", f"{entry.kind} ({entry.cause})"),
        ("state", entry.state),
        ("amount", f"{export.major_units(entry.amount_minor, entry.currency)} {entry.currency}"),
        ("base", f"{export.major_units(entry.base_minor, entry.currency)} {entry.currency}"),
        ("rate", f"{entry.rate_bps} bps"),
        ("creator", entry.creator_ref),
        ("merchant", str(entry.merchant_id)),
        ("program", f"{detail.program.id} {detail.program.name} ({detail.program.kind})"),
        ("link", detail.link.code if detail.link else entry.attribution_ref),
        ("order", f"{detail.order.id} ({detail.order.status}) line {detail.line.id}"),
        ("reverses", entry.reverses or ""),
        ("reversed by", ", ".join(detail.reversed_by)),
        ("hold until", export.utc_text(entry.hold_until)),
        ("payout", entry.payout_id or ""),
        ("created", export.utc_text(entry.created_at)),
    ):
        facts.add_row(name, value)
    console.print(facts)
    history = Table("at", "from", "to", "payout", title="history")
    for step in detail.history:
        history.add_row(export.utc_text(step.at), step.from_state or "", step.to_state, step.payout_id or "")
    console.print(history)


@commissions.command("export")
@_filter_options
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the CSV to this file (default: standard output).",
)
@pass_ctx
def commissions_export(obj: Context, output: Path | None, **options: Any) -> None:
    """Entries matching the filters as CSV, oldest first, in the columns of the API's export."""
    filters = _filters(obj, **options)
    chunks = export.iter_csv(obj.rt.db, filters, None)
    if output is None:
        for chunk in chunks:
            click.echo(chunk, nl=False)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            handle.write(chunk)
    with output.open(encoding="utf-8", newline="") as handle:
        count = sum(1 for _ in csv.reader(handle)) - 1  # the header aside
    err.print(f"exported {count} commission{'' if count == 1 else 's'} to {output}", highlight=False)
