"""`storelink resync`: a full resync through the workers, followed with progress, and its summary."""

from __future__ import annotations

import logging
import time
from typing import Any

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.catalog import syncs
from connector.cli.common import TERMINAL, Context, _cell, _errors, console, err, pass_ctx
from connector.infra import runtime
from connector.infra.models import SyncRun
from connector.merchants.records import get_merchant

logger = logging.getLogger(__name__)


def _summary(run: SyncRun) -> Table:
    table = Table("run " + str(run.id), "", title="dry run (nothing written)" if run.dry_run else None)
    elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else 0
    status = run.status
    if run.status == "succeeded" and run.failed_rows:
        status = f"succeeded, {run.failed_rows} bad row(s) skipped"
    for label, value in (
        ("status", status),
        ("attempts", run.attempt),
        ("rows read", run.rows_read),
        ("created", run.created),
        ("updated", run.updated),
        ("unchanged", run.unchanged),
        ("deleted", run.deleted),
        ("failed rows", run.failed_rows),
        ("events", run.events_emitted),
        ("seconds", f"{elapsed:.1f}"),
        ("error", run.error or "-"),
    ):
        table.add_row(label, str(value))
    return table


@click.command()
@click.argument("merchant")
@click.option("--catalog", "kind", flag_value="catalog", default=True, help="Resync the catalog (default).")
@click.option("--dry-run", is_flag=True, help="Compute and print the changes without applying them.")
@click.option("--no-wait", is_flag=True, help="Queue the run and return at once.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the run.")
@click.option(
    "--notice-after",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a queued run may wait before what it waits for is printed.",
)
@pass_ctx
def resync(
    obj: Context, merchant: str, kind: str, dry_run: bool, no_wait: bool, timeout: float, notice_after: float
) -> None:
    """Run a full resync for MERCHANT (id or name) through the workers, with progress and a summary.

    A run no worker takes, or one retrying after an error, is said so after --notice-after seconds."""
    rt = obj.rt
    with _errors():
        with rt.db.session() as session:
            merchant_id = get_merchant(session, merchant).id
        run = syncs.request_sync(rt, merchant_id, kind=kind, full=True, dry_run=dry_run)
    console.print(f"run {run.id} queued on '{run.queue}'")
    if no_wait:
        return
    final = _follow(rt, run.id, timeout, notice_after)
    console.print(_summary(final))
    if final.row_errors:
        table = Table("line", "skipped row")
        for e in final.row_errors[:20]:
            table.add_row(str(e["line"]), e["error"])
        console.print(table)
        if final.failed_rows > 20:
            console.print(f"… and {final.failed_rows - 20} more")
    if dry_run:
        console.print(_diff_table(final.diff) if final.diff else "dry run: nothing would change")
    if final.status != "succeeded":
        raise click.ClickException(f"run {final.id} {final.status}: {final.error or 'no worker finished it'}")


DIFF_ROWS = 50


def _diff_table(diff: list[dict[str, Any]]) -> Table:
    """A dry run's change list, one row per changed field with the stored value and the store's."""
    table = Table("change", "product", "variant", "field", "before", "after", title="dry run: would change")
    shown = 0
    for entry in diff:
        fields = entry.get("changes") or {"": [None, None]}
        for name, (old, new) in fields.items():
            if shown == DIFF_ROWS:
                table.caption = f"the first {DIFF_ROWS} changes of {len(diff)} recorded"
                return table
            table.add_row(
                entry["op"],
                entry.get("product", ""),
                entry.get("variant", ""),
                name,
                _cell(old) if old is not None else "-",
                _cell(new) if new is not None else "-",
            )
            shown += 1
    return table


def _follow(rt: runtime.Runtime, run_id: int, timeout: float, notice_after: float) -> SyncRun:
    """Wait for the run to finish, with progress; say what it waits for once it has waited `notice_after`."""
    started = time.monotonic()
    deadline = started + timeout
    noticed: str | None = None
    run = syncs.get_run(rt, run_id)
    total = syncs.expected_rows(rt, run)
    of = f" of ~{total:,} (as last time)" if total else " (total unknown before a first sync)"
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("waiting for a worker", total=total, rows="")
        while True:
            run = syncs.get_run(rt, run_id)
            progress.update(
                task,
                completed=min(run.rows_read, total) if total else run.rows_read,
                description=f"run {run_id} {run.status}",
                rows=f"{run.rows_read:,} rows{of}, {run.events_emitted:,} events",
            )
            if run.status in TERMINAL:
                return run
            waited = time.monotonic() - started
            if run.status == "queued" and waited >= notice_after:
                why = syncs.waiting_for(rt, run, waited=waited)
                if noticed is None or (run.error or "") not in noticed:
                    progress.console.print(f"run {run_id} queued: {why}", highlight=False)
                    noticed = why
            if time.monotonic() > deadline:
                why = syncs.waiting_for(rt, run, waited=waited)
                raise click.ClickException(f"run {run_id} still {run.status} after {timeout:.0f}s: {why}")
            time.sleep(0.25)
