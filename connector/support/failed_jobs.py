"""Retrying failed jobs: the work a job carried is reopened before the job is queued again, or the reason it
cannot be done again is given.

A job only carries an id; the database row it names decides whether running it does anything. A failed sync
run stays failed, so its job requeued as it is would find nothing to claim: the run is reopened (queued, its
error cleared) first. An order whose push ended (rejected, confirmed) is not pushed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rq.job import Job
from sqlalchemy import select, update

from connector.catalog import syncs
from connector.domain.orders import OrderStatus
from connector.infra.models import Merchant, Order, SyncRun
from connector.infra.runtime import Runtime
from connector.orders import push

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What retrying one failed job did: `requeued`, with what was reopened, or not, with why (`note`)."""

    job_id: str
    requeued: bool
    note: str


def retry(rt: Runtime, job_id: str) -> RetryOutcome:
    """Reopen the work of the failed job `job_id` and queue the job again, or say why it cannot be."""
    job = next((j for j in rt.queues.failed_jobs() if j.id == job_id), None)
    if job is None:
        return RetryOutcome(job_id, False, "not a failed job")
    return retry_job(rt, job)


def retry_job(rt: Runtime, job: Job) -> RetryOutcome:
    """`retry` of a job taken from the failed jobs."""
    job_id = job.id
    reason, note = _reopen(rt, job)
    if reason is not None:
        logger.warning("failed job not retried", extra={"job_id": job_id, "reason": reason})
        return RetryOutcome(job_id, False, reason)
    if not rt.queues.retry_failed(job_id):
        return RetryOutcome(job_id, False, "not a failed job")
    logger.info("failed job requeued", extra={"job_id": job_id, "func": job.func_name})
    return RetryOutcome(job_id, True, note)


def _reopen(rt: Runtime, job: Job) -> tuple[str | None, str]:
    """(why the job cannot be retried, or None; what retrying it will do)."""
    args = job.args
    if job.func_name in syncs.JOB_FUNCS.values() and args and isinstance(args[0], int):
        return _reopen_sync_run(rt, args[0], job.id)
    if job.func_name == push.JOB_FUNC and args and isinstance(args[0], int):
        return _order_push_open(rt, args[0]), f"pushes order {args[0]} again"
    return None, f"runs {job.func_name} again"


def _reopen_sync_run(rt: Runtime, run_id: int, job_id: str) -> tuple[str | None, str]:
    with rt.db.session() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            return f"sync run {run_id} no longer exists", ""
        if run.status != "failed":
            return f"sync run {run_id} is {run.status}, not failed", ""
        merchant = session.get(Merchant, run.merchant_id)
        if merchant is None or merchant.status != "installed":
            state = merchant.status if merchant else "deleted"
            problem = f": {merchant.problem}" if merchant and merchant.problem else ""
            return f"merchant {run.merchant_id} of sync run {run_id} is {state}{problem}", ""
        active = session.scalars(
            select(SyncRun.id).where(
                SyncRun.merchant_id == run.merchant_id,
                SyncRun.kind == run.kind,
                SyncRun.dry_run == run.dry_run,
                SyncRun.status.in_(syncs.ACTIVE),
            )
        ).first()
        if active is not None:
            return f"merchant {merchant.name} already has sync run {active} under way", ""
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status == "failed")
            .values(status="queued", error=None, finished_at=None, lease_token=None, job_id=job_id)
        )
    logger.info("failed sync run reopened", extra={"run_id": run_id, "job_id": job_id})
    return None, f"sync run {run_id} reopened"


def _order_push_open(rt: Runtime, order_id: int) -> str | None:
    with rt.db.session() as session:
        order = session.get(Order, order_id)
        if order is None:
            return f"order {order_id} no longer exists"
        if order.status != OrderStatus.ACCEPTED.value:
            why = f" ({order.rejection_reason})" if order.rejection_reason else ""
            return f"order {order_id} is {order.status}{why}: its push is over"
    return None
