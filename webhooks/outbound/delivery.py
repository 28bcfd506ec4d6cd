"""The delivery job (`deliver`), the sweeper that re-enqueues lost jobs, and replay of failed deliveries.

One attempt per job. The job claims the delivery with a compare-and-set (moving `next_attempt_at` to a lease
in the future), sends outside any transaction, then records the attempt, the delivery's new state and the
endpoint's breaker state in one transaction, and only after that commit schedules the next attempt. A
worker killed mid-attempt leaves a pending delivery whose lease expires; the sweeper enqueues it again and
the receiver deduplicates on `webhook-id`. Redis may lose every job at any time: the database is the record.

Before claiming, the job takes one of its endpoint's in-flight slots and looks at where the endpoint's
deliveries belong (`isolation`): a job on the home queue for an endpoint now slow moves its delivery to the
slow queue without an attempt, and one that finds the endpoint at its cap puts the delivery off a few
seconds (its `next_attempt_at` moves, its attempt count does not).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import get_current_job
from sqlalchemy import Update, select, update
from sqlalchemy.orm import Session

from connector.infra import problems, runtime
from connector.infra.models import Delivery, DeliveryAttempt, EventPayload, WebhookEndpoint
from webhooks.outbound import breaker, isolation, retry, scheduling, transport
from webhooks.outbound.endpoints import signing_secrets
from webhooks.outbound.payload import body_for
from webhooks.outbound.signing import sign

logger = logging.getLogger(__name__)

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
EXCERPT_CHARS = transport.EXCERPT_BYTES
DEFAULT_LEASE_MARGIN = timedelta(seconds=30)
DEFAULT_SWEEP_GRACE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Process-wide delivery settings; the worker's composition root sets them with `configure`."""

    timeout: float = transport.DEFAULT_TIMEOUT
    allow_private: bool = False
    breaker: breaker.BreakerPolicy = field(default_factory=breaker.BreakerPolicy)
    due_tolerance: timedelta = timedelta(seconds=2)
    lease_margin: timedelta = DEFAULT_LEASE_MARGIN
    isolation: isolation.IsolationPolicy = field(default_factory=isolation.IsolationPolicy)

    @property
    def lease(self) -> timedelta:
        """How long a claimed attempt holds its delivery: the request timeout plus the margin."""
        return timedelta(seconds=self.timeout) + self.lease_margin


_config = DeliveryConfig()


def configure(config: DeliveryConfig | None = None) -> DeliveryConfig:
    global _config
    _config = config or DeliveryConfig()
    return _config


def current_config() -> DeliveryConfig:
    return _config


def _now() -> datetime:
    return datetime.now(UTC)


def _running_on() -> str | None:
    """The queue of the RQ job running this code, None outside a worker."""
    job = get_current_job()
    return job.origin if job is not None else None


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    body: bytes
    headers: dict[str, str]
    attempt: int
    endpoint_id: int


@dataclass(frozen=True, slots=True)
class _Later:
    """The delivery was put off (breaker open, endpoint full) or moved to the slow queue, with no attempt."""

    attempt: int
    target: str
    when: datetime | None = None
    waits: int = 0
    reason: str = ""


def _claimable(delivery_id: int, attempt_count: int, now: datetime, config: DeliveryConfig) -> Update:
    return (
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == PENDING,
            Delivery.attempt_count == attempt_count,
            (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now + config.due_tolerance),
        )
        .execution_options(synchronize_session=False)
    )


def deliver(delivery_id: int, queue: str = scheduling.DEFAULT_QUEUE, waits: int = 0) -> str:
    """RQ job: make the next attempt of delivery `delivery_id`; returns what happened (for logs and tests).

    `queue` is the delivery's home queue; `waits` how often it already found its endpoint at its cap.
    Idempotent: a delivery that already succeeded or failed, or that another job has claimed, is left alone.
    """
    rt = runtime.current()
    config = _config
    now = _now()
    held: list[tuple[int, str]] = []  # (endpoint id, slot token) of the in-flight slot taken
    try:
        with rt.db.session() as session:
            step = _next_step(rt, session, delivery_id, queue, waits, now, config, held)
        if isinstance(step, str):
            return step
        if isinstance(step, _Later):
            return _put_off(rt, delivery_id, queue, step)
        prepared = step
        result = transport.post(
            prepared.url,
            prepared.body,
            prepared.headers,
            timeout=config.timeout,
            allow_private=config.allow_private,
        )
    finally:
        for slot in held:
            isolation.release(rt.redis, *slot)
    return _record(rt, delivery_id, prepared, result, queue, config)


def _next_step(
    rt: runtime.Runtime,
    session: Session,
    delivery_id: int,
    queue: str,
    waits: int,
    now: datetime,
    config: DeliveryConfig,
    held: list[tuple[int, str]],
) -> str | _Later | Prepared:
    """What this job does with the delivery: nothing (the outcome), put it off, or send the attempt claimed."""
    policy = config.isolation
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        logger.info("delivery not found", extra={"delivery_id": delivery_id})
        return "missing"
    if delivery.status != PENDING:
        return "skipped"
    due = delivery.next_attempt_at
    if due is not None and due > now + config.due_tolerance:
        return "not_due"
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    payload = session.get(EventPayload, delivery.payload_id)
    if endpoint is None or payload is None:
        return "missing"
    if not endpoint.enabled:
        delivery.status = FAILED
        delivery.next_attempt_at = None
        delivery.last_error = f"endpoint disabled: {endpoint.disabled_reason or 'disabled'}"
        logger.info("delivery failed: endpoint disabled", extra={"delivery_id": delivery_id})
        return "failed"
    attempt = delivery.attempt_count + 1
    open_until = breaker.admit(session, endpoint, now, config.breaker)
    if open_until is not None:
        delivery.next_attempt_at = open_until
        # The probe ending the cool-down may take the whole timeout: it goes out from the slow queue.
        target = isolation.route(rt.redis, queue, slow=True, policy=policy)
        return _Later(attempt, target, open_until, reason="breaker open")
    slow = endpoint.id in isolation.slow_endpoints(rt.redis, [endpoint.id])
    target = isolation.route(rt.redis, queue, slow=slow, policy=policy)
    running_on = _running_on()
    if target == policy.slow_queue and running_on is not None and running_on != target:
        return _Later(attempt, target, reason="endpoint slow")
    return _claim(rt, session, delivery, endpoint, payload, target, waits, now, config, held)


def _claim(
    rt: runtime.Runtime,
    session: Session,
    delivery: Delivery,
    endpoint: WebhookEndpoint,
    payload: EventPayload,
    target: str,
    waits: int,
    now: datetime,
    config: DeliveryConfig,
    held: list[tuple[int, str]],
) -> str | _Later | Prepared:
    """Take one of the endpoint's in-flight slots (kept in `held` for the caller to give back) and claim the
    delivery for the attempt; an endpoint at its cap puts the delivery off a few seconds instead."""
    attempt = delivery.attempt_count + 1
    slot = isolation.acquire(
        rt.redis, endpoint.id, cap=config.isolation.concurrency, lease=config.lease.total_seconds()
    )
    if slot is None:
        when = now + timedelta(seconds=isolation.wait_delay(waits))
        moved = session.execute(
            _claimable(delivery.id, delivery.attempt_count, now, config).values(next_attempt_at=when)
        ).rowcount  # type: ignore[attr-defined]
        if not moved:
            return "skipped"
        return _Later(attempt, target, when, waits=waits + 1, reason="endpoint at its cap")
    held.append((endpoint.id, slot))
    claimed = session.execute(
        _claimable(delivery.id, delivery.attempt_count, now, config).values(
            next_attempt_at=now + config.lease
        )
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        return "skipped"
    secret, previous = signing_secrets(rt.secrets, endpoint, now=now)
    body = body_for(payload)
    return Prepared(
        url=endpoint.url,
        body=body,
        headers=sign(payload.id, body, secret, previous_secret=previous),
        attempt=attempt,
        endpoint_id=endpoint.id,
    )


def _put_off(rt: runtime.Runtime, delivery_id: int, queue: str, later: _Later) -> str:
    extra = {"delivery_id": delivery_id, "queue": later.target, "reason": later.reason}
    if later.when is None:
        scheduling.enqueue_now(
            [(delivery_id, later.attempt)],
            queue=queue,
            target=later.target,
            suffix=scheduling.MOVED_SUFFIX,
            redis=rt.redis,
        )
        logger.info("delivery moved to the slow queue", extra=extra)
        return "moved"
    scheduling.enqueue_at(
        delivery_id,
        later.attempt,
        later.when,
        queue=queue,
        target=later.target,
        suffix=f"-deferred-{int(later.when.timestamp())}",
        waits=later.waits,
        redis=rt.redis,
    )
    logger.info("delivery deferred", extra={**extra, "until": later.when.isoformat()})
    return "deferred"


def _record(
    rt: runtime.Runtime,
    delivery_id: int,
    prepared: Prepared,
    result: transport.SendResult,
    queue: str,
    config: DeliveryConfig,
) -> str:
    now = _now()
    with rt.db.session() as session:
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        endpoint = session.get(WebhookEndpoint, prepared.endpoint_id, with_for_update=True)
        if delivery is None or endpoint is None:
            return "missing"
        recorded = apply_result(session, delivery, endpoint, prepared, result, now, config)
    slow = observe(rt, prepared.endpoint_id, result.duration_ms, config)
    if recorded.schedule is not None:
        schedule_next(
            rt,
            delivery_id,
            prepared.attempt + 1,
            recorded.schedule,
            queue,
            config,
            slow or recorded.breaker_open,
        )
    return recorded.outcome


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording one attempt decided: its outcome, and when the next attempt is due (if any)."""

    outcome: str
    schedule: datetime | None = None
    breaker_open: bool = False


def attempt_values(delivery_id: int, result: transport.SendResult, now: datetime) -> dict[str, Any]:
    """The `delivery_attempts` row of one attempt's answer (its excerpt cut to EXCERPT_CHARS)."""
    return {
        "delivery_id": delivery_id,
        "attempted_at": now,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "response_excerpt": result.excerpt[:EXCERPT_CHARS] if result.excerpt is not None else None,
        "error": result.error,
    }


def apply_result(
    session: Session,
    delivery: Delivery,
    endpoint: WebhookEndpoint,
    prepared: Prepared,
    result: transport.SendResult,
    now: datetime,
    config: DeliveryConfig,
) -> Recorded:
    """Record one attempt and move the delivery and the endpoint's breaker on, inside the caller's
    transaction (the rows locked by the caller); the caller schedules the next attempt after its commit."""
    outcome = retry.classify(result.status_code, blocked=result.blocked)
    schedule: datetime | None = None
    breaker_open = False
    session.add(DeliveryAttempt(**attempt_values(delivery.id, result, now)))
    if delivery.status != PENDING or delivery.attempt_count != prepared.attempt - 1:
        # This attempt outlived its lease and another one was recorded first: history only.
        logger.warning(
            "late delivery attempt recorded without changing the delivery",
            extra={"delivery_id": delivery.id, "attempt": prepared.attempt, "outcome": outcome.value},
        )
        return Recorded("late")
    delivery.attempt_count = prepared.attempt
    delivery.last_status_code = result.status_code
    delivery.last_error = None if outcome is retry.Outcome.SUCCESS else _error_text(result)
    if outcome is retry.Outcome.SUCCESS:
        delivery.status = SUCCEEDED
        delivery.next_attempt_at = None
        problems.clear_problems(session, [problems.ENDPOINT_FAILING], endpoint_id=endpoint.id, now=now)
        breaker.record_success(endpoint)
    else:
        problems.raise_problem(
            session, problems.ENDPOINT_FAILING, endpoint_id=endpoint.id, detail=delivery.last_error, now=now
        )
    if outcome is retry.Outcome.RETRY:
        breaker_open = breaker.record_failure(endpoint, now, config.breaker)
        schedule = retry.next_attempt_at(now, prepared.attempt, retry_after=result.retry_after)
        if schedule is None:
            delivery.status = FAILED
            delivery.next_attempt_at = None
            delivery.last_error = (
                f"retries exhausted after {prepared.attempt} attempts: {delivery.last_error}"
            )
        else:
            delivery.next_attempt_at = schedule
    elif outcome is not retry.Outcome.SUCCESS:
        delivery.status = FAILED
        delivery.next_attempt_at = None
        if outcome is retry.Outcome.GONE:
            endpoint.enabled = False
            endpoint.disabled_reason = "the endpoint answered 410 Gone"
            logger.warning("endpoint disabled: 410 Gone", extra={"endpoint_id": endpoint.id})
    log_attempt(delivery.id, endpoint.id, prepared.attempt, result, outcome)
    return Recorded(outcome.value, schedule, breaker_open)


def log_attempt(
    delivery_id: int, endpoint_id: int, attempt: int, result: transport.SendResult, outcome: retry.Outcome
) -> None:
    """One line per delivery would flood the log; successes show at DEBUG, anything else at INFO."""
    logger.log(
        logging.DEBUG if outcome is retry.Outcome.SUCCESS else logging.INFO,
        "delivery attempt",
        extra={
            "delivery_id": delivery_id,
            "endpoint_id": endpoint_id,
            "attempt": attempt,
            "status_code": result.status_code,
            "outcome": outcome.value,
            "duration_ms": result.duration_ms,
        },
    )


def observe(rt: runtime.Runtime, endpoint_id: int, duration_ms: int, config: DeliveryConfig) -> bool:
    """Fold an attempt's duration into the endpoint's average; whether it is slow now (False on error)."""
    return observe_many(rt, endpoint_id, [duration_ms], config)


def observe_many(rt: runtime.Runtime, endpoint_id: int, durations: list[int], config: DeliveryConfig) -> bool:
    """Fold attempts' durations, in order, into the endpoint's average in one call; whether it is slow now
    (False when there are none, or on error)."""
    if not durations:
        return False
    try:
        return isolation.observe_many(rt.redis, endpoint_id, durations, config.isolation)
    except Exception:  # a routing hint only
        logger.warning("endpoint timing not recorded", extra={"endpoint_id": endpoint_id}, exc_info=True)
        return False


def schedule_next(
    rt: runtime.Runtime,
    delivery_id: int,
    attempt: int,
    when: datetime,
    queue: str,
    config: DeliveryConfig,
    slow: bool,
) -> None:
    """Enqueue `attempt` of the delivery for `when`, on the slow queue when the endpoint is slow or its
    breaker open; a failure is logged (the sweeper enqueues the delivery once it is overdue)."""
    try:
        target = isolation.route(rt.redis, queue, slow=slow, policy=config.isolation)
        scheduling.enqueue_at(delivery_id, attempt, when, queue=queue, target=target, redis=rt.redis)
    except Exception:
        logger.exception("scheduling the next attempt failed", extra={"delivery_id": delivery_id})


def _error_text(result: transport.SendResult) -> str:
    if result.status_code is None:
        return result.error or "no response"
    return f"HTTP {result.status_code}" + (f": {result.error}" if result.error else "")


def sweep_deliveries(
    rt: runtime.Runtime,
    *,
    grace: timedelta = DEFAULT_SWEEP_GRACE,
    queue: str = scheduling.DEFAULT_QUEUE,
    limit: int = 1000,
    now: datetime | None = None,
) -> int:
    """Enqueue pending deliveries overdue by more than `grace` whose job is not alive; returns how many.

    A claimed delivery is overdue once its lease has run out, so an attempt whose worker was killed is
    retried `lease + grace` after it began; its job, still marked started in RQ, is presumed dead by then.
    """
    now = now or _now()
    cutoff = now - grace
    with rt.db.session() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.attempt_count, Delivery.endpoint_id)
            .where(
                Delivery.status == PENDING,
                Delivery.next_attempt_at.is_(None) | (Delivery.next_attempt_at <= cutoff),
            )
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
        )
        due = [
            scheduling.Due(delivery_id, count + 1, endpoint_id) for delivery_id, count, endpoint_id in rows
        ]
    if not due:
        return 0
    count = scheduling.enqueue_lost(due, started_before=cutoff - _config.lease, queue=queue, redis=rt.redis)
    if count:
        logger.info("overdue deliveries enqueued", extra={"enqueued": count, "overdue": len(due)})
    return count


def sweep() -> int:
    """Periodic job: enqueue overdue deliveries whose job was lost (Redis flushed, worker killed)."""
    rt = runtime.current()
    return sweep_deliveries(rt, grace=timedelta(seconds=rt.settings.webhook_sweep_grace_seconds))


def list_deliveries(
    session: Session,
    *,
    status: str | None = None,
    endpoint_id: int | None = None,
    event_type: str | None = None,
    limit: int = 50,
) -> list[tuple[Delivery, str]]:
    """Deliveries with their event's type, newest first, filtered by status, endpoint and event type."""
    query = (
        select(Delivery, EventPayload.type)
        .join(EventPayload, EventPayload.id == Delivery.payload_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Delivery.status == status)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event_type:
        query = query.where(EventPayload.type == event_type)
    return [(d, t) for d, t in session.execute(query)]


def replay(
    session: Session, delivery_ids: Iterable[int], *, queue: str = scheduling.DEFAULT_QUEUE
) -> list[int]:
    """Reset failed deliveries to pending with a fresh retry schedule (attempt history is kept) and enqueue
    them after the commit; returns the ids that were reset. Re-enable a disabled endpoint first."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return []
    now = _now()
    rows = list(
        session.scalars(
            select(Delivery).where(Delivery.id.in_(ids), Delivery.status == FAILED).order_by(Delivery.id)
        )
    )
    for delivery in rows:
        delivery.status = PENDING
        delivery.attempt_count = 0
        delivery.next_attempt_at = now
        delivery.last_error = None
    session.flush()
    reset = [d.id for d in rows]
    scheduling.enqueue_after_commit(
        session, [scheduling.Due(d.id, 1, d.endpoint_id) for d in rows], queue=queue
    )
    logger.info("deliveries replayed", extra={"requested": len(ids), "replayed": len(reset)})
    return reset


def replay_failed(
    session: Session,
    *,
    endpoint_id: int | None = None,
    since: datetime | None = None,
    limit: int = 1000,
    queue: str = scheduling.DEFAULT_QUEUE,
) -> list[int]:
    """Replay failed deliveries, optionally of one endpoint and created at or after `since`."""
    query = select(Delivery.id).where(Delivery.status == FAILED).order_by(Delivery.id).limit(limit)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    return replay(session, list(session.scalars(query)), queue=queue)
