"""Support's pages of the running service, and the console's actions on work that failed: the queues (depth,
workers alive, failed jobs and Retry), the platform's webhook endpoints with their deliveries and Replay, and a
merchant's store webhooks as received with their replay. Each action is the CLI's (`storelink jobs retry`,
`replay`, `inbound replay`), through the same functions. The Webhooks page also lists the endpoints' problems
from the problem list, open and cleared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Response, flash, redirect, request, url_for
from rq import Worker
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.console.base import bp, page, require_merchant, require_support, runtime
from connector.infra.models import DeliveryAttempt, InboundEvent
from connector.support import failed_jobs, ops
from webhooks.inbound import drain, scheduling
from webhooks.outbound import delivery, endpoints

logger = logging.getLogger(__name__)

INBOUND_STATUSES = ("failed", "skipped", "processed")
ENDPOINT_HISTORY = 20


def inbound_events(session: Session, merchant_id: int, limit: int = 25) -> list[InboundEvent]:
    """A merchant's newest store webhooks as received."""
    return drain.list_events(session, merchant_id, limit=limit)


@bp.post("/merchants/<int:merchant_id>/inbound/replay")
def inbound_replay(merchant_id: int) -> Response:
    """Process the merchant's stored store webhooks in a state again (failed by default), as
    `storelink inbound replay` does."""
    require_merchant(merchant_id)
    status = request.form.get("status", "failed")
    if status not in INBOUND_STATUSES:
        flash(f"cannot replay deliveries that are {status!r}", "error")
        return redirect(url_for("console.merchant", merchant_id=merchant_id))  # type: ignore[return-value]
    rt = runtime()
    with rt.db.session() as db:
        replayed = drain.replay(db, merchant_id, statuses=(status,))
    if replayed:
        scheduling.clear(rt.redis, merchant_id)
        scheduling.signal(rt.redis, merchant_id, ttl=rt.settings.worker_lock_seconds)
    logger.info(
        "inbound deliveries replayed from the console",
        extra={"merchant_id": merchant_id, "count": len(replayed)},
    )
    flash(f"replayed {len(replayed)} store webhook(s)", "ok")
    return redirect(url_for("console.merchant", merchant_id=merchant_id) + "#inbound")  # type: ignore[return-value]


# --- queues ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedJob:
    id: str
    queue: str
    func: str
    args: str
    ended_at: datetime | None
    error: str


def _failed_jobs() -> list[FailedJob]:
    found = []
    for job in runtime().queues.failed_jobs():
        result = job.latest_result()
        text = ((result.exc_string if result is not None else None) or "").strip()
        found.append(
            FailedJob(
                job.id,
                job.origin,
                job.func_name or "",
                ", ".join(map(repr, job.args or ()))[:100],
                job.ended_at,
                text.splitlines()[-1] if text else "",
            )
        )
    return sorted(found, key=lambda j: j.ended_at or datetime.min, reverse=True)


@bp.get("/queues")
def queues() -> Response:
    who = require_support()
    rt = runtime()
    registry = rt.queues.registry_counts()
    depth = [
        {
            "name": name,
            "queued": n,
            "started": registry.get((name, "started"), 0),
            "scheduled": registry.get((name, "scheduled"), 0),
            "failed": registry.get((name, "failed"), 0),
            "workers": rt.queues.workers_on(name),
        }
        for name, n in rt.queues.depths().items()
    ]
    workers: list[dict[str, Any]] = [
        {
            "name": w.name,
            "queues": ", ".join(w.queue_names()),
            "state": w.get_state(),
            "heartbeat": w.last_heartbeat,
        }
        for w in Worker.all(connection=rt.redis)
    ]
    return page("queues.html", who=who, depth=depth, workers=workers, failed=_failed_jobs())


@bp.post("/queues/jobs/<job_id>/retry")
def retry_job(job_id: str) -> Response:
    """Reopen the failed job's work and queue it again (`storelink jobs retry JOB_ID`)."""
    require_support()
    outcome = failed_jobs.retry(runtime(), job_id)
    if outcome.requeued:
        flash(f"requeued {job_id}: {outcome.note}", "ok")
    else:
        flash(f"{job_id} not retried: {outcome.note}", "error")
    return redirect(url_for("console.queues"))  # type: ignore[return-value]


# --- outbound webhooks -----------------------------------------------------------------------------------------


@bp.get("/webhooks")
def webhooks() -> Response:
    who = require_support()
    status = request.args.get("status") or None
    if status not in (None, "pending", "succeeded", "failed"):
        status = None
    with runtime().db.session() as db:
        listed = delivery.list_deliveries(db, status=status, limit=50)
        attempts: dict[int, list[DeliveryAttempt]] = {}
        for attempt in db.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([d.id for d, _ in listed]))
            .order_by(DeliveryAttempt.id)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
        hooks = endpoints.list_endpoints(db)
    rt = runtime()
    showing = [p for p in ops.open_problems(None, rt=rt) if p.endpoint_id is not None]
    cleared = [p for p in ops.problem_history(None, rt=rt) if p.endpoint_id is not None and not p.open]
    return page(
        "webhooks.html",
        who=who,
        shown=status,
        endpoints=hooks,
        deliveries=listed,
        attempts=attempts,
        problems=showing,
        failing={p.endpoint_id for p in showing},
        cleared=cleared[:ENDPOINT_HISTORY],
    )


@bp.post("/webhooks/deliveries/<int:delivery_id>/replay")
def replay_delivery(delivery_id: int) -> Response:
    """Send a failed delivery again, its attempt history kept (`storelink replay ID`)."""
    require_support()
    with runtime().db.session() as db:
        replayed = delivery.replay(db, [delivery_id])
    if replayed:
        flash(f"delivery {delivery_id} replayed", "ok")
    else:
        flash(f"delivery {delivery_id} is not a failed delivery", "error")
    return redirect(url_for("console.webhooks"))  # type: ignore[return-value]
