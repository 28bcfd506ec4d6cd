"""Sync runs: recorded in the database before they are queued, claimed with a lease, swept when lost.

Redis may lose its queues at any moment (it keeps nothing on disk). A SyncRun row is the durable record
of the work; the RQ job only carries it. `sweep` re-enqueues runs that are queued with no live job, or
running with a stale heartbeat (a killed worker), and the lease makes sure only one worker writes.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from connector.catalog.synchronizer import LeaseLostError
from connector.domain.errors import PermanentError, ValidationError
from connector.infra import problems
from connector.infra.models import Merchant, SyncRun
from connector.infra.queue import BULK, SYNC
from connector.infra.runtime import Runtime

logger = logging.getLogger(__name__)

JOB_FUNCS = {
    "catalog": "connector.catalog.jobs.run_sync",
    "inventory": "connector.stock.resync.run_inventory_resync",
    "orders": "connector.orders.resync.run_orders_resync",
    "reconcile": "connector.orders.reconciliation.run_reconciliation",
}
"""The RQ job of each kind of run, by dotted name: the kinds above the catalog run jobs of the layers that
own their writes (stock, orders)."""
KINDS = tuple(JOB_FUNCS)
ACTIVE = ("queued", "running")
JOB_FUNC = JOB_FUNCS["catalog"]
QUEUED_GRACE = timedelta(seconds=5)


def request_sync(
    rt: Runtime,
    merchant_id: int,
    *,
    kind: str = "catalog",
    full: bool = True,
    dry_run: bool = False,
    since: datetime | None = None,
) -> SyncRun:
    """Record a run and queue it. An active run of the same kind for the merchant is returned instead."""
    with rt.db.session() as session:
        run, created = record_sync(session, merchant_id, kind=kind, full=full, dry_run=dry_run, since=since)
        job_id, queue = run.job_id, run.queue
    if created and job_id:
        _enqueue(rt, run.id, queue, job_id, kind)
        logger.info("sync run requested", extra={"merchant_id": merchant_id, "run_id": run.id, "kind": kind})
    return run


def record_sync(
    session: Session,
    merchant_id: int,
    *,
    kind: str = "catalog",
    full: bool = True,
    dry_run: bool = False,
    since: datetime | None = None,
) -> tuple[SyncRun, bool]:
    """Record a queued run in `session`'s transaction (no enqueue: the caller does it after commit, or the
    sweeper finds it); returns (run, created). An active run of the same kind is returned instead."""
    if kind not in KINDS:
        raise ValidationError(f"unknown sync kind {kind!r}; one of {', '.join(KINDS)}", code="bad_sync_kind")
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise ValidationError(f"no merchant {merchant_id}", code="merchant_not_found")
    if merchant.status != "installed":
        raise ValidationError(
            f"merchant {merchant.name} is {merchant.status}: {merchant.problem or 'resume it first'}",
            code="merchant_not_active",
        )
    active = session.scalars(
        select(SyncRun).where(
            SyncRun.merchant_id == merchant_id,
            SyncRun.kind == kind,
            SyncRun.status.in_(ACTIVE),
            SyncRun.dry_run == dry_run,
        )
    ).first()
    if active is not None:
        return active, False
    run = SyncRun(
        merchant_id=merchant_id,
        kind=kind,
        full=full,
        dry_run=dry_run,
        queue=BULK if full and kind == "catalog" else SYNC,
        status="queued",
        since=since,
    )
    session.add(run)
    session.flush()
    run.job_id = _new_job_id(run.id)
    return run, True


def enqueue_run(rt: Runtime, run: SyncRun) -> None:
    """Queue a run recorded with `record_sync` once its transaction committed (best effort, swept)."""
    if run.job_id:
        _enqueue(rt, run.id, run.queue, run.job_id, run.kind)


def _new_job_id(run_id: int) -> str:
    return f"sync-{run_id}-{uuid.uuid4().hex[:8]}"


def _enqueue(rt: Runtime, run_id: int, queue: str, job_id: str, kind: str) -> None:
    """Best effort: a failure here only delays the run until the sweeper finds it."""
    try:
        rt.queues.enqueue(
            queue, JOB_FUNCS[kind], run_id, job_id=job_id, timeout=rt.settings.job_timeout_seconds
        )
    except Exception:
        logger.exception("enqueue failed; the sweeper will retry", extra={"run_id": run_id, "job_id": job_id})


def claim(rt: Runtime, run_id: int) -> str | None:
    """Take the run's lease: only if it is queued, or running with a heartbeat older than the stale limit."""
    token = uuid.uuid4().hex
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=rt.settings.stale_after_seconds)
    with rt.db.session() as session:
        result = session.execute(
            update(SyncRun)
            .where(
                SyncRun.id == run_id,
                or_(
                    SyncRun.status == "queued",
                    (SyncRun.status == "running") & (SyncRun.heartbeat_at < stale),
                ),
            )
            .values(
                status="running",
                lease_token=token,
                attempt=SyncRun.attempt + 1,
                heartbeat_at=now,
                started_at=now,
                error=None,
            )
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            return None
    return token


def finish(rt: Runtime, run_id: int, token: str, *, status: str, error: str | None = None) -> None:
    """Close (or, with status 'queued', hand back) a run we hold the lease of."""
    values: dict[str, object] = {"status": status, "error": error, "heartbeat_at": datetime.now(UTC)}
    if status in ("succeeded", "failed"):
        values["finished_at"] = datetime.now(UTC)
    if status == "queued":
        values["lease_token"] = None
    with rt.db.session() as session:
        session.execute(
            update(SyncRun).where(SyncRun.id == run_id, SyncRun.lease_token == token).values(**values)
        )


def record_progress(rt: Runtime, run_id: int, token: str, **values: Any) -> None:
    """Store a running run's counters (any `SyncRun` columns) with a heartbeat, while we hold its lease;
    LeaseLostError when another worker took it over."""
    with rt.db.session() as session:
        moved = session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.lease_token == token)
            .values(heartbeat_at=datetime.now(UTC), **values)
        ).rowcount  # type: ignore[attr-defined]
    if not moved:
        raise LeaseLostError(f"sync run {run_id} was taken over")


def pause_merchant(session: Session, merchant_id: int, problem: str) -> None:
    """Pause an installed merchant with a visible problem (and `credentials_refused` on the problem list);
    an uninstalled one stays uninstalled."""
    was = session.scalar(select(Merchant.status).where(Merchant.id == merchant_id).with_for_update())
    if was is None or was == "uninstalled":
        return
    session.execute(
        update(Merchant).where(Merchant.id == merchant_id).values(status="paused", problem=problem)
    )
    if was == "installed":  # once per pause (a refused refresh paused it already)
        problems.raise_problem(session, problems.CREDENTIALS_REFUSED, merchant_id=merchant_id, detail=problem)


def sweep(rt: Runtime) -> list[int]:
    """Re-enqueue runs whose job was lost (Redis flushed) or whose worker died. Returns the run ids."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=rt.settings.stale_after_seconds)
    with rt.db.session() as session:
        candidates = session.execute(
            select(SyncRun.id, SyncRun.status, SyncRun.queue, SyncRun.job_id, SyncRun.kind).where(
                or_(
                    (SyncRun.status == "queued") & (SyncRun.created_at < now - QUEUED_GRACE),
                    (SyncRun.status == "running") & (SyncRun.heartbeat_at < stale),
                )
            )
        ).all()
    revived: list[int] = []
    for run_id, status, queue, job_id, kind in candidates:
        if status == "queued" and job_id and rt.queues.is_live(job_id):
            continue
        new_job = _new_job_id(run_id)
        with rt.db.session() as session:
            moved = session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id, SyncRun.status == status, SyncRun.job_id == job_id)
                .values(job_id=new_job)
            ).rowcount  # type: ignore[attr-defined]
        if moved:
            _enqueue(rt, run_id, queue, new_job, kind)
            revived.append(run_id)
            logger.warning("sync run re-enqueued", extra={"run_id": run_id, "was": status, "job_id": new_job})
    return revived


def expected_rows(rt: Runtime, run: SyncRun) -> int | None:
    """Rows the merchant's last succeeded run of the same kind read: the likely total of `run`."""
    with rt.db.session() as session:
        rows = session.scalars(
            select(SyncRun.rows_read)
            .where(
                SyncRun.merchant_id == run.merchant_id,
                SyncRun.kind == run.kind,
                SyncRun.status == "succeeded",
                SyncRun.id != run.id,
            )
            .order_by(SyncRun.id.desc())
            .limit(1)
        ).first()
    return rows or None


NO_WORKER_HINT = "is `storelink up` or `storelink worker` running?"


def waiting_for(rt: Runtime, run: SyncRun, *, waited: float | None = None) -> str:
    """What an unfinished run is waiting for, in words for support: a worker that never came, the next
    retry after a failed attempt (with that attempt's error), or the worker running it. `waited` is how long
    the caller has watched the run (default: since the run was recorded)."""
    now = datetime.now(UTC)
    if run.status == "running":
        beat = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else 0.0
        return f"running on a worker (attempt {run.attempt}, last heartbeat {beat:.0f} s ago)"
    listening = rt.queues.workers_on(run.queue)
    no_worker = "" if listening else f" (no worker listens on queue '{run.queue}': {NO_WORKER_HINT})"
    if run.error:
        due = rt.queues.retry_at(run.queue, run.job_id) if run.job_id else None
        when = f"; next try at {due:%H:%M:%S} UTC" if due else ""
        return f"retrying: attempt {run.attempt} failed with {run.error}{when}{no_worker}"
    if waited is None:
        waited = (now - run.created_at).total_seconds()
    if not listening:
        return f"no worker has taken run {run.id} in {waited:.0f} s: {NO_WORKER_HINT}"
    return f"waiting {waited:.0f} s for one of {listening} worker(s) on queue '{run.queue}'"


def get_run(rt: Runtime, run_id: int) -> SyncRun:
    with rt.db.session() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            raise PermanentError(f"no sync run {run_id}", code="run_not_found")
        return run


def list_runs(
    session: Session, *, merchant_id: int | None = None, status: str | None = None, limit: int = 50
) -> list[SyncRun]:
    """Sync runs, newest first: a merchant's, or those in `status`, at most `limit`."""
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if merchant_id is not None:
        query = query.where(SyncRun.merchant_id == merchant_id)
    if status is not None:
        query = query.where(SyncRun.status == status)
    return list(session.scalars(query))


def latest_run(session: Session, merchant_id: int) -> SyncRun | None:
    """The merchant's newest sync run, if it has one."""
    runs = list_runs(session, merchant_id=merchant_id, limit=1)
    return runs[0] if runs else None
