"""`storelink jobs`: failed jobs and failed sync runs, and their retry."""

from __future__ import annotations

import json
import logging
from typing import Any

import click
from rich.table import Table

from connector.catalog import syncs
from connector.cli.common import Context, console, pass_ctx

logger = logging.getLogger(__name__)


@click.group()
def jobs() -> None:
    """Queued work: failed jobs and retries."""


@jobs.command("failed")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def jobs_failed(obj: Context, as_json: bool) -> None:
    """List failed jobs with their errors, and failed sync runs."""
    rt = obj.rt
    failed: list[dict[str, Any]] = []
    for job in rt.queues.failed_jobs():
        result = job.latest_result()
        exc = (result.exc_string if result is not None else None) or ""
        failed.append(
            {
                "id": job.id,
                "queue": job.origin,
                "func": job.func_name,
                "ended_at": job.ended_at.isoformat() if job.ended_at else None,
                "error": exc.strip().splitlines()[-1] if exc.strip() else "",
            }
        )
    with rt.db.session() as session:
        runs = syncs.list_runs(session, status="failed", limit=50)
        failed_runs: list[dict[str, Any]] = [
            {"run": r.id, "merchant_id": r.merchant_id, "error": r.error} for r in runs
        ]
    if as_json:
        click.echo(json.dumps({"jobs": failed, "sync_runs": failed_runs}))
        return
    table = Table("job", "queue", "function", "ended", "error", title="failed jobs")
    for j in failed:
        table.add_row(j["id"], j["queue"], j["func"], j["ended_at"] or "", j["error"])
    console.print(table if failed else "no failed jobs")
    table = Table("run", "merchant", "error", title="failed sync runs")
    for r in failed_runs:
        table.add_row(str(r["run"]), str(r["merchant_id"]), r["error"] or "")
    console.print(table if failed_runs else "no failed sync runs")


@jobs.command("retry")
@click.argument("job_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed job.")
@pass_ctx
def jobs_retry(obj: Context, job_id: str | None, retry_all: bool) -> None:
    """Put a failed job (or all of them) back on its queue, reopening the work it failed (a failed sync run
    is queued again); a job whose work cannot be done again is left failed, with the reason."""
    from connector.support import failed_jobs

    rt = obj.rt
    if not job_id and not retry_all:
        raise click.UsageError("give a JOB_ID or --all")
    if retry_all:
        outcomes = [failed_jobs.retry_job(rt, job) for job in rt.queues.failed_jobs()]
    else:
        outcomes = [failed_jobs.retry(rt, job_id or "")]
    if not outcomes:
        console.print("no failed jobs to retry")
        return
    for outcome in outcomes:
        if outcome.requeued:
            console.print(f"requeued {outcome.job_id}: {outcome.note}", highlight=False)
    refused = [o for o in outcomes if not o.requeued]
    requeued = len(outcomes) - len(refused)
    console.print(f"requeued {requeued} job(s)" + (f", {len(refused)} not retried" if refused else ""))
    if refused:
        raise click.ClickException(
            "; ".join(f"{o.job_id} not retried: {o.note}" for o in refused[:10])
            + (f"; … and {len(refused) - 10} more" if len(refused) > 10 else "")
        )
