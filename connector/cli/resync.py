"""`storelink resync`: catalog, inventory and orders resyncs through the workers, followed with progress, and
their summaries (the same runs as the console's Resync, through `connector.support.ops`)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.catalog import syncs
from connector.cli.common import TERMINAL, Context, _cell, _errors, console, err, pass_ctx
from connector.infra import runtime
from connector.infra.models import SyncRun
from connector.merchants.records import get_merchant
from connector.support import ops

logger = logging.getLogger(__name__)


def _summary(run: SyncRun) -> Table:
    """A finished run's summary table: status, attempts, the counters of its kind, time and error."""
    table = Table("run " + str(run.id), "", title="dry run (nothing written)" if run.dry_run else None)
    elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else 0
    status = run.status
    if run.status == "succeeded" and run.failed_rows:
        status = f"succeeded, {run.failed_rows} bad row(s) skipped"
    rows: list[tuple[str, object]] = [("kind", run.kind), ("status", status), ("attempts", run.attempt)]
    if run.since is not None:
        rows.append(("orders since", f"{run.since:%Y-%m-%d %H:%M:%S} UTC"))
    rows += ops.progress_of(run).labelled_counts
    if run.kind not in ops.COUNT_LABELS:
        rows += [(part, _cell_of(value)) for part, value in (run.details or {}).items()]
    rows += [("seconds", f"{elapsed:.1f}"), ("error", run.error or "-")]
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def _cell_of(value: object) -> str:
    """A reconcile part's counts in words: `drift 2, fixed 2`; nothing to say is `-`."""
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {count}" for key, count in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "-" if value is None else str(value)


KIND_FLAGS = ("catalog", "inventory", "orders")


def _when(value: str | None) -> datetime | None:
    """`--since`: an ISO 8601 time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint="--since") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.command()
@click.argument("merchant")
@click.option("--catalog", is_flag=True, help="Resync the catalog (the default when no kind is given).")
@click.option(
    "--inventory", is_flag=True, help="Read the store's stock, compare it with Storelink's, fix it."
)
@click.option("--orders", is_flag=True, help="Look up accepted orders in the store; confirm or push each.")
@click.option("--since", default=None, help="--orders: only orders placed at or after this ISO 8601 time.")
@click.option("--dry-run", is_flag=True, help="Compute and print the changes without applying them.")
@click.option("--no-wait", is_flag=True, help="Queue the run(s) and return at once.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for each run.")
@click.option(
    "--notice-after",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a queued run may wait before what it waits for is printed.",
)
@pass_ctx
def resync(
    obj: Context,
    merchant: str,
    catalog: bool,
    inventory: bool,
    orders: bool,
    since: str | None,
    dry_run: bool,
    no_wait: bool,
    timeout: float,
    notice_after: float,
) -> None:
    """Resync MERCHANT (id or name) through the workers, with progress and a summary per kind: the catalog
    (default), the inventory (store stock compared and fixed) and/or the orders (accepted ones looked up).

    A run no worker takes, or one retrying after an error, is said so after --notice-after seconds."""
    kinds = [kind for kind, on in zip(KIND_FLAGS, (catalog, inventory, orders), strict=True) if on] or [
        "catalog"
    ]
    start = _when(since)
    if start is not None and "orders" not in kinds:
        raise click.UsageError("--since applies to --orders")
    rt = obj.rt
    with _errors():
        with rt.db.session() as session:
            merchant_id = get_merchant(session, merchant).id
        run_ids = [
            ops.start_resync(merchant_id, kind, dry_run, start if kind == "orders" else None, rt=rt)
            for kind in kinds
        ]
    for run_id in run_ids:
        run = syncs.get_run(rt, run_id)
        console.print(f"run {run.id} queued on '{run.queue}' ({run.kind}{', dry run' if dry_run else ''})")
    if no_wait:
        return
    failed = []
    for run_id in run_ids:
        final = _follow(rt, run_id, timeout, notice_after)
        _report(final)
        if final.status != "succeeded":
            failed.append(f"run {final.id} {final.status}: {final.error or 'no worker finished it'}")
    if failed:
        raise click.ClickException("; ".join(failed))


def _report(final: SyncRun) -> None:
    """A finished run's summary, its first bad rows and (dry run, or what it did) its change list."""
    console.print(_summary(final))
    if final.row_errors:
        table = Table("line", "skipped row" if final.kind == "catalog" else "error")
        for e in final.row_errors[:20]:
            table.add_row(str(e["line"]), e["error"])
        console.print(table)
        if final.failed_rows > 20:
            console.print(f"… and {final.failed_rows - 20} more")
    if final.dry_run:
        console.print(_diff_table(final.diff) if final.diff else "dry run: nothing would change")
    elif final.kind != "catalog" and final.diff:
        console.print(_diff_table(final.diff, title="changed"))


DIFF_ROWS = 50


def _diff_table(diff: list[dict[str, Any]], title: str = "dry run: would change") -> Table:
    """A change list, one row per changed field with the stored value and the store's (an order's changes
    name the order in the product column)."""
    table = Table("change", "product", "variant", "field", "before", "after", title=title)
    shown = 0
    for entry in diff:
        fields = entry.get("changes") or {"": [None, None]}
        for name, (old, new) in fields.items():
            if shown == DIFF_ROWS:
                table.caption = f"the first {DIFF_ROWS} changes of {len(diff)} recorded"
                return table
            table.add_row(
                entry["op"],
                entry.get("product", entry.get("order", "")),
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
    total = syncs.expected_rows(rt, run) if run.kind == "catalog" else None
    if total:
        of = f" of ~{total:,} (as last time)"
    else:
        of = " (total unknown before a first sync)" if run.kind == "catalog" else " (counting)"
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
            if run.total is not None and run.total != total:
                total, of = run.total, f" of {run.total:,}"
                progress.update(task, total=total)
            progress.update(
                task,
                completed=min(run.rows_read, total) if total else run.rows_read,
                description=f"run {run_id} {run.kind} {run.status}",
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
