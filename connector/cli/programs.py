"""`storelink programs`: merchants' affiliate programs for support: list them, show one with its rates (per
product and per store collection).

Rates are in basis points (1000 = 10%); windows, holds and rate locks in days. An unknown merchant or program is
a one-line error and exit status 1.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click
from rich.table import Table

from connector.affiliates import collection_rates, program_reports
from connector.cli.commissions import row_dict
from connector.cli.common import Context, _errors, _print_rows, console, pass_ctx
from connector.merchants.records import get_merchant

logger = logging.getLogger(__name__)

DAY = 86400


def _days(seconds: int) -> str:
    days = seconds / DAY
    return f"{days:g}d"


@click.group()
def programs() -> None:
    """Merchants' affiliate programs: open to every creator, or targeted at one."""


@programs.command("list")
@click.option("--merchant", default=None, help="Merchant id or name.")
@click.option("--status", type=click.Choice(["active", "ended"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def programs_list(obj: Context, merchant: str | None, status: str | None, as_json: bool) -> None:
    """Programs by id, with their rate, windows and how many links creators made."""
    with _errors(), obj.rt.db.session() as session:
        merchant_id = get_merchant(session, merchant).id if merchant is not None else None
        rows: list[dict[str, Any]] = [
            row_dict(row)
            for row in program_reports.programs(session, None, merchant_id=merchant_id, status=status)
        ]
    for row in rows:
        row["window"] = _days(row["attribution_window_seconds"])
        row["hold"] = _days(row["hold_seconds"])
        row["rate_lock"] = _days(row["rate_lock_seconds"])
    _print_rows(
        rows,
        as_json,
        [
            ("id", "id"),
            ("merchant", "merchant_id"),
            ("name", "name"),
            ("kind", "kind"),
            ("creator", "creator_ref"),
            ("rate bps", "default_rate_bps"),
            ("window", "window"),
            ("hold", "hold"),
            ("rate lock", "rate_lock"),
            ("status", "status"),
            ("links", "links"),
        ],
        empty="no programs found",
    )


@programs.command("show")
@click.argument("program_id", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def programs_show(obj: Context, program_id: int, as_json: bool) -> None:
    """One program with its per-product and per-collection rates (a product's own rate wins over its
    collections'; of several collections, the highest rate)."""
    with _errors(), obj.rt.db.session() as session:
        program, rates = program_reports.program_detail(session, program_id, None)
        by_collection = collection_rates.listed(session, program.id)
    if as_json:
        rows = {"rates": [row_dict(rate) for rate in rates], "collection_rates": by_collection}
        click.echo(json.dumps(row_dict(program) | rows))
        return
    facts = Table("field", "value", show_header=False)
    for name, value in (
        ("id", str(program.id)),
        ("name", program.name),
        ("merchant", str(program.merchant_id)),
        ("kind", program.kind + (f" (creator {program.creator_ref})" if program.creator_ref else "")),
        ("default rate", f"{program.default_rate_bps} bps" if program.default_rate_bps is not None else ""),
        ("attribution window", _days(program.attribution_window_seconds)),
        ("hold", _days(program.hold_seconds)),
        ("rate lock", _days(program.rate_lock_seconds)),
        ("status", program.status),
        ("links", str(program.links)),
    ):
        facts.add_row(name, value)
    console.print(facts)
    table = Table("product", "title", "rate bps", title="rates")
    for rate in rates:
        table.add_row(str(rate.product_id), rate.product_title, str(rate.rate_bps))
    console.print(table if rates else "no per-product rates", highlight=False)
    groups = Table("collection", "handle", "title", "rate bps", title="collection rates")
    for entry in by_collection:
        groups.add_row(str(entry["collection_id"]), entry["handle"], entry["title"], str(entry["rate_bps"]))
    console.print(groups if by_collection else "no per-collection rates", highlight=False)
