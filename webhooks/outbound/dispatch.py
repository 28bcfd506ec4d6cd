"""The dispatcher: first attempts of new deliveries to one endpoint, claimed, sent and recorded in rounds.

A fan-out of many events makes many deliveries at once, and one RQ job with two transactions per delivery
costs more than the POSTs themselves. So the fan-out only wakes its endpoint's dispatcher (`signal`: a
short-lived flag taken with SET NX by `scheduling.signal_dispatch`, so a burst queues one job), and `dispatch` works in rounds: it claims up
to `ROUND` due first attempts of the endpoint in one statement (each under the same lease as a single
attempt), signs them, sends them concurrently over the process's pooled connections with no more in flight
than the endpoint's cap, and records every attempt in one transaction with the same rules as
`delivery.deliver` (`delivery.apply_result`). The flag stays set while it works, so deliveries made
meanwhile are found by its next round; once caught up it clears the flag, sends what one more round finds
and stops, and a delivery made after the clear wakes a new dispatcher (which queues behind the jobs already
waiting, so a steady stream to one endpoint does not hold a worker from the drains).

Anything out of the ordinary goes to the one-delivery job, which knows how to put a delivery off: an
endpoint disabled, failing (any failure since its last success, breaker open or cooling down), slow (its
deliveries belong on the slow queue), or still with no free slot after a short wait. A round stops starting
POSTs at the first answer that counts against the endpoint (so the breaker sees failures one by one) or
that makes it slow (so its backlog moves to the slow queue instead of holding this worker); what it did not
send then goes to one-delivery jobs. A round also stops starting POSTs once its claim is half a lease margin
old, so nothing claimed is sent after its lease could have run out; on a healthy endpoint what it did not send
is released (due again) and the next round claims it, so a slow machine makes smaller rounds, not a flood
of one-delivery jobs. A dispatcher lost or killed mid-round leaves its deliveries pending under their
lease; the sweeper enqueues them one by one once it has run out, and the receiver deduplicates on
`webhook-id`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from rq import get_current_job
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from connector.infra import bulk_insert, problems, runtime
from connector.infra.models import Delivery, DeliveryAttempt, EventPayload, UTCDateTime, WebhookEndpoint
from webhooks.outbound import breaker, delivery, isolation, retry, scheduling, transport
from webhooks.outbound.endpoints import signing_secrets
from webhooks.outbound.payload import body_for
from webhooks.outbound.signing import sign

logger = logging.getLogger(__name__)

ROUND: Final = 100
"""Most deliveries one round claims."""
TIME_BUDGET: Final = 10.0
"""Seconds a dispatcher works before it hands the rest to a fresh job (other endpoints get a turn)."""
SLOT_WAIT: Final = 2.0
SLOT_POLL: Final = 0.005
_TROUBLE: Final = frozenset({retry.Outcome.RETRY, retry.Outcome.GONE})
SEND_WINDOW_MAX: Final = 20.0
"""Longest a round keeps starting POSTs after its claim, in seconds (at most half the lease margin)."""


def _now() -> datetime:
    return datetime.now(UTC)


def dispatch(endpoint_id: int, queue: str = scheduling.DEFAULT_QUEUE) -> dict[str, int]:
    """RQ job: send the due first attempts of endpoint `endpoint_id`; returns counts by outcome
    (`handed_over` for deliveries passed to one-delivery jobs). `queue` is the deliveries' home queue.

    Idempotent like `deliver`: only pending deliveries still due for their first attempt are claimed.
    """
    rt = runtime.current()
    config = delivery.current_config()
    counts: Counter[str] = Counter()
    flag_cleared = False
    deadline = time.monotonic() + TIME_BUDGET
    while True:
        if not _ordinary(rt, endpoint_id, queue, config):
            rt.redis.delete(scheduling.dispatch_flag_key(endpoint_id))
            counts["handed_over"] += _hand_over(rt, endpoint_id, _due_ids(rt, endpoint_id, config), queue)
            break
        released = counts["released"]
        taken = _round(rt, endpoint_id, queue, config, counts)
        if taken < ROUND and counts["released"] == released:  # caught up
            if flag_cleared:  # the round after letting go of the flag is the last
                break
            rt.redis.delete(scheduling.dispatch_flag_key(endpoint_id))
            flag_cleared = True
        elif time.monotonic() > deadline:
            rt.redis.delete(scheduling.dispatch_flag_key(endpoint_id))
            scheduling.signal_dispatch(rt.redis, [endpoint_id], queue=queue)
            break
        elif not flag_cleared:
            rt.redis.expire(scheduling.dispatch_flag_key(endpoint_id), scheduling.DISPATCH_FLAG_TTL)
    if counts:
        logger.debug("deliveries dispatched", extra={"endpoint_id": endpoint_id, **counts})
    return dict(counts)


def _round(
    rt: runtime.Runtime, endpoint_id: int, queue: str, config: delivery.DeliveryConfig, counts: Counter[str]
) -> int:
    """Claim, send and record one round; returns how many deliveries it claimed (or handed over)."""
    slots = _acquire_slots(rt, endpoint_id, config.isolation.concurrency, config)
    if not slots:
        due = _due_ids(rt, endpoint_id, config)
        counts["handed_over"] += _hand_over(rt, endpoint_id, due, queue)
        return 0
    job = get_current_job()
    on_slow_queue = job is not None and job.origin == config.isolation.slow_queue
    observer = isolation.Observer(rt.redis, endpoint_id, config.isolation)

    def stop_after(result: transport.SendResult) -> bool:
        """Observe one answer; True when the rest should go one by one (failing or newly slow endpoint)."""
        slow = observer.add(result.duration_ms)
        outcome = retry.classify(result.status_code, blocked=result.blocked)
        return outcome in _TROUBLE or (slow and not on_slow_queue)

    started = time.monotonic()
    try:
        items = _claim(rt, endpoint_id, _now(), config)
        window = min(config.lease_margin.total_seconds() / 2, SEND_WINDOW_MAX)
        results, unsent, troubled = _send(items, len(slots), time.monotonic() + window, config, stop_after)
    finally:
        isolation.release(rt.redis, endpoint_id, *slots)
    slow = delivery.observe_many(
        rt, endpoint_id, observer.durations, config
    )  # the round's answers, in one call
    if results:  # recorded first, so the deliveries handed over see the endpoint's failures
        counts.update(_record(rt, endpoint_id, results, queue, config, slow))
    if unsent:
        _release(rt, unsent)
        if troubled:  # a failing or slow endpoint: the one-delivery jobs know how to put deliveries off
            counts["handed_over"] += _hand_over(rt, endpoint_id, [i.delivery_id for i in unsent], queue)
        else:  # the window ran out on a healthy endpoint: the next round claims them again
            counts["released"] += len(unsent)
    _log_round(endpoint_id, len(items), len(results), len(unsent), troubled, time.monotonic() - started)
    return len(items)


def _log_round(
    endpoint_id: int, claimed: int, sent: int, unsent: int, troubled: bool, seconds: float
) -> None:
    """A round that stopped early is worth a line (INFO); a complete one only at DEBUG."""
    stopped = ("trouble" if troubled else "window") if unsent else None
    logger.log(
        logging.INFO if stopped else logging.DEBUG,
        "dispatcher round",
        extra={
            "endpoint_id": endpoint_id,
            "claimed": claimed,
            "sent": sent,
            "unsent": unsent,
            "stopped": stopped,
            "duration_ms": int(seconds * 1000),
        },
    )


def _ordinary(rt: runtime.Runtime, endpoint_id: int, queue: str, config: delivery.DeliveryConfig) -> bool:
    """Whether the endpoint takes a round now: enabled, healthy (no failure since its last success, breaker
    closed), and not due on the slow queue."""
    with rt.db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if (
            endpoint is None
            or not endpoint.enabled
            or endpoint.consecutive_failures
            or endpoint.circuit_open_until is not None
        ):
            return False
    slow = endpoint_id in isolation.slow_endpoints(rt.redis, [endpoint_id])
    target = isolation.route(rt.redis, queue, slow=slow, policy=config.isolation)
    job = get_current_job()
    return target == queue or (job is not None and job.origin == target)


_DUE: Final = (
    select(Delivery.id)
    .where(
        Delivery.endpoint_id == bindparam("due_endpoint_id"),
        Delivery.status == delivery.PENDING,
        Delivery.attempt_count == 0,
        Delivery.next_attempt_at.is_(None)
        | (Delivery.next_attempt_at <= bindparam("due_by", type_=UTCDateTime())),
    )
    .order_by(Delivery.id)
    .limit(ROUND)
)
"""Up to ROUND deliveries of an endpoint due for their first attempt by `due_by` (built once)."""
_CLAIM: Final = (
    update(Delivery)
    .where(
        Delivery.id.in_(_DUE.scalar_subquery()),
        Delivery.status == delivery.PENDING,
        Delivery.attempt_count == 0,
    )
    .values(next_attempt_at=bindparam("lease_until", type_=UTCDateTime()))
    .returning(Delivery.id, Delivery.payload_id)
    .execution_options(synchronize_session=False)
)
_PAYLOADS: Final = select(EventPayload).where(EventPayload.id.in_(bindparam("payload_ids", expanding=True)))


def _due(endpoint_id: int, now: datetime, config: delivery.DeliveryConfig) -> dict[str, Any]:
    """The parameters of `_DUE` (and `_CLAIM`) for the endpoint at `now`."""
    return {"due_endpoint_id": endpoint_id, "due_by": now + config.due_tolerance}


def _due_ids(rt: runtime.Runtime, endpoint_id: int, config: delivery.DeliveryConfig) -> list[int]:
    with rt.db.session() as session:
        return list(session.scalars(_DUE, _due(endpoint_id, _now(), config)))


def _acquire_slots(
    rt: runtime.Runtime, endpoint_id: int, wanted: int, config: delivery.DeliveryConfig
) -> list[str]:
    """Up to `wanted` of the endpoint's in-flight slots, waiting up to `SLOT_WAIT` seconds for the first
    (a healthy endpoint frees one within milliseconds); none when the endpoint stays full."""
    lease = config.lease.total_seconds()
    give_up = time.monotonic() + SLOT_WAIT
    while True:
        cap = config.isolation.concurrency
        slots = isolation.acquire_many(rt.redis, endpoint_id, wanted, cap=cap, lease=lease)
        if slots or time.monotonic() > give_up:
            return slots
        time.sleep(SLOT_POLL)


@dataclass(frozen=True, slots=True)
class _Item:
    delivery_id: int
    prepared: delivery.Prepared


def _claim(
    rt: runtime.Runtime, endpoint_id: int, now: datetime, config: delivery.DeliveryConfig
) -> list[_Item]:
    """Claim up to `ROUND` deliveries due for their first attempt and sign them; the claim is committed."""
    with rt.db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            return []
        params = {**_due(endpoint_id, now, config), "lease_until": now + config.lease}
        claimed = list(session.execute(_CLAIM, params))
        if not claimed:
            return []
        payloads = {
            p.id: p
            for p in session.scalars(
                _PAYLOADS, {"payload_ids": sorted({payload_id for _, payload_id in claimed})}
            )
        }
        secret, previous = signing_secrets(rt.secrets, endpoint, now=now)
        items = []
        for delivery_id, payload_id in sorted(claimed):
            payload = payloads[payload_id]
            body = body_for(payload)
            items.append(
                _Item(
                    delivery_id,
                    delivery.Prepared(
                        url=endpoint.url,
                        body=body,
                        headers=sign(payload.id, body, secret, previous_secret=previous),
                        attempt=1,
                        endpoint_id=endpoint_id,
                    ),
                )
            )
    return items


def _send(
    items: list[_Item],
    concurrency: int,
    deadline: float,
    config: delivery.DeliveryConfig,
    stop_after: Callable[[transport.SendResult], bool],
) -> tuple[list[tuple[_Item, transport.SendResult]], list[_Item], bool]:
    """POST the items with `concurrency` threads. Those not started by `deadline` (monotonic; the first item
    always is, so every round makes progress), or after an answer for which `stop_after` is true, are
    returned unsent; the flag tells whether such an answer came."""
    pending = list(reversed(items))
    results: list[tuple[_Item, transport.SendResult]] = []
    unsent: list[_Item] = []
    lock = threading.Lock()
    troubled = threading.Event()

    def run() -> None:
        while True:
            with lock:
                if not pending:
                    return
                item = pending.pop()
                late = time.monotonic() > deadline and len(pending) < len(items) - 1  # the first always goes
                if troubled.is_set() or late:
                    unsent.append(item)
                    continue
            result = transport.post(
                item.prepared.url,
                item.prepared.body,
                item.prepared.headers,
                timeout=config.timeout,
                allow_private=config.allow_private,
            )
            if stop_after(result):
                troubled.set()
            with lock:
                results.append((item, result))

    threads = [threading.Thread(target=run, name="dispatch") for _ in range(max(concurrency - 1, 0))]
    for thread in threads:
        thread.start()
    run()
    for thread in threads:
        thread.join()
    return results, unsent, troubled.is_set()


def _release(rt: runtime.Runtime, items: list[_Item]) -> None:
    """Give back claims that were never sent: due now, for the one-delivery jobs they are handed to."""
    with rt.db.session() as session:
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_([item.delivery_id for item in items]),
                Delivery.status == delivery.PENDING,
                Delivery.attempt_count == 0,
            )
            .values(next_attempt_at=_now())
            .execution_options(synchronize_session=False)
        )


def _hand_over(rt: runtime.Runtime, endpoint_id: int, ids: list[int], queue: str) -> int:
    """Enqueue one-delivery jobs for these first attempts (routed like any other)."""
    return scheduling.enqueue_now(
        [scheduling.Due(delivery_id, 1, endpoint_id) for delivery_id in ids], queue=queue, redis=rt.redis
    )


def _record(
    rt: runtime.Runtime,
    endpoint_id: int,
    results: list[tuple[_Item, transport.SendResult]],
    queue: str,
    config: delivery.DeliveryConfig,
    slow: bool,
) -> Counter[str]:
    now = _now()
    outcomes: Counter[str] = Counter()
    retries: list[tuple[int, datetime]] = []
    breaker_open = False
    with rt.db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if endpoint is None:
            return Counter({"missing": len(results)})
        if _record_successes(session, endpoint, results, now):
            return Counter({retry.Outcome.SUCCESS.value: len(results)})
        rows = {
            row.id: row
            for row in session.scalars(
                select(Delivery)
                .where(Delivery.id.in_([item.delivery_id for item, _ in results]))
                .with_for_update()
            )
        }
        for item, result in sorted(results, key=lambda pair: pair[0].delivery_id):
            row = rows.get(item.delivery_id)
            if row is None:
                outcomes["missing"] += 1
                continue
            recorded = delivery.apply_result(session, row, endpoint, item.prepared, result, now, config)
            outcomes[recorded.outcome] += 1
            breaker_open = breaker_open or recorded.breaker_open
            if recorded.schedule is not None:
                retries.append((item.delivery_id, recorded.schedule))
    for delivery_id, when in retries:
        delivery.schedule_next(rt, delivery_id, 2, when, queue, config, slow or breaker_open)
    return outcomes


_succeeded = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(
        status=delivery.SUCCEEDED,
        attempt_count=1,
        last_status_code=bindparam("status_code"),
        last_error=None,
        next_attempt_at=None,
        updated_at=bindparam("now"),
    )
)


def _record_successes(
    session: Session,
    endpoint: WebhookEndpoint,
    results: list[tuple[_Item, transport.SendResult]],
    now: datetime,
) -> bool:
    """The usual round, recorded in bulk: every answer a success, every delivery still pending on its first
    attempt (rows locked here). Then one INSERT of the attempts and one UPDATE of the deliveries write what
    `delivery.apply_result` would, delivery by delivery; anything else returns False with nothing written,
    and the caller records one attempt at a time."""
    ids = [item.delivery_id for item, _ in results]
    if any(retry.classify(r.status_code, blocked=r.blocked) is not retry.Outcome.SUCCESS for _, r in results):
        return False
    if any(item.prepared.attempt != 1 for item, _ in results):
        return False
    states = session.execute(
        select(Delivery.id, Delivery.status, Delivery.attempt_count)
        .where(Delivery.id.in_(ids))
        .with_for_update()
    ).all()
    if len(states) != len(set(ids)) or any(s.status != delivery.PENDING or s.attempt_count for s in states):
        return False
    ordered = sorted(results, key=lambda pair: pair[0].delivery_id)
    conn = session.connection()
    bulk_insert.insert_many(
        conn,
        DeliveryAttempt.__table__,  # type: ignore[arg-type]
        [delivery.attempt_values(item.delivery_id, result, now) for item, result in ordered],
    )
    conn.execute(
        _succeeded,
        [{"delivery_id": item.delivery_id, "status_code": r.status_code, "now": now} for item, r in ordered],
    )
    problems.clear_problems(session, [problems.ENDPOINT_FAILING], endpoint_id=endpoint.id, now=now)
    breaker.record_success(endpoint)
    if logger.isEnabledFor(logging.DEBUG):
        for item, result in ordered:
            delivery.log_attempt(item.delivery_id, endpoint.id, 1, result, retry.Outcome.SUCCESS)
    return True
