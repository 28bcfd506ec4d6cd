"""Test helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from rq.job import Job, JobStatus
from sqlalchemy import func, select

from connector import runtime, syncs
from connector.merchants import create_merchant
from connector.models import EventPayload, SyncRun
from connector.worker import build_worker


def add_feed_merchant(rt: runtime.Runtime, feed: Path, name: str = "shop", buffer: int = 0) -> int:
    with rt.db.session() as session:
        merchant = create_merchant(
            session, rt.secrets, kind="feed", name=name, config={"url": str(feed)}, inventory_buffer=buffer
        )
        return merchant.id


def drain(rt: runtime.Runtime) -> None:
    """Run a real RQ worker until the queues are empty."""
    build_worker(rt).work(burst=True, with_scheduler=False)


def sync_now(rt: runtime.Runtime, merchant_id: int, *, dry_run: bool = False) -> SyncRun:
    """Request a sync, run the worker, and check the job ended as the run did."""
    run = syncs.request_sync(rt, merchant_id, dry_run=dry_run)
    drain(rt)
    final = syncs.get_run(rt, run.id)
    assert final.job_id is not None
    status = Job.fetch(final.job_id, connection=rt.redis).get_status()
    expected = JobStatus.FINISHED if final.status == "succeeded" else JobStatus.FAILED
    assert status == expected, f"run {final.status} but its job is {status}"
    return final


def event_counts(rt: runtime.Runtime, merchant_id: int) -> dict[str, int]:
    with rt.db.session() as session:
        rows = session.execute(
            select(EventPayload.type, func.count())
            .where(EventPayload.merchant_id == merchant_id)
            .group_by(EventPayload.type)
        )
        return {t: n for t, n in rows}


def rewrite_feed(path: Path, change: Callable[[int, dict[str, str]], dict[str, str] | None]) -> None:
    """Rewrite a CSV feed row by row; `change(index, row)` returns the new row, or None to drop it."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in (change(i, dict(row)) for i, row in enumerate(reader)) if r is not None]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
