"""Slow and dead endpoints are isolated: a cap on attempts in flight per endpoint, slow endpoints' deliveries on
the webhooks queue, and the sweeper replacing delivery jobs whose worker was killed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry
from sqlalchemy import select, update

from config.settings import Settings
from connector.infra import outbox, runtime
from connector.infra.models import Delivery, DeliveryAttempt
from connector.infra.queue import EVENTS, WEBHOOKS
from connector.sandbox.platform import Fault, Server, serve
from connector.worker import build_worker
from tests.helpers import Processes, drain, process_env, wait_for
from webhooks.outbound import delivery, fanout, isolation, scheduling
from webhooks.outbound.endpoints import create_endpoint

Runtime = runtime.Runtime


@pytest.fixture
def outbound(rt: Runtime) -> Iterator[Runtime]:
    isolation.forget()
    delivery.configure(
        delivery.DeliveryConfig(
            allow_private=True, timeout=5, isolation=isolation.IsolationPolicy(concurrency=1, slow_after=0.5)
        )
    )
    fanout.install()
    yield rt
    fanout.uninstall()
    delivery.configure()
    isolation.forget()


@pytest.fixture
def platform() -> Iterator[Server]:
    with serve() as server:
        yield server


def add_endpoint(rt: Runtime, server: Server) -> int:
    with rt.db.session() as session:
        created = create_endpoint(session, rt.secrets, url=server.url, event_types=["*"], allow_private=True)
        endpoint_id = created.endpoint.id
    server.receiver.add_secret(created.secret)
    return endpoint_id


def publish(rt: Runtime, count: int = 1) -> None:
    with rt.db.session() as session:
        outbox.publish(session, [outbox.DomainEvent("order.confirmed", None, {"n": i}) for i in range(count)])


def deliveries(rt: Runtime, endpoint_id: int | None = None) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.id)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    with rt.db.session() as session:
        return list(session.scalars(query))


def make_due(rt: Runtime) -> None:
    with rt.db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def queued_ids(redis: Redis, name: str) -> list[str]:
    return Queue(name, connection=redis).job_ids


def queued_calls(redis: Redis, name: str) -> list[tuple[str, tuple[object, ...]]]:
    return [(job.func_name, tuple(job.args)) for job in Queue(name, connection=redis).jobs]


@pytest.fixture
def webhooks_worker_alive(rt: Runtime) -> Iterator[None]:
    """A worker registered on the webhooks queue (as `storelink worker --queues webhooks` would be)."""
    worker = SimpleWorker([rt.queues[WEBHOOKS]], connection=rt.redis)
    worker.register_birth()
    isolation.forget()
    yield
    worker.register_death()
    isolation.forget()


def test_an_endpoint_at_its_cap_puts_the_delivery_off_without_an_attempt(
    outbound: Runtime, platform: Server
) -> None:
    endpoint_id = add_endpoint(outbound, platform)
    held = isolation.acquire(outbound.redis, endpoint_id, cap=1, lease=60)  # another worker's POST
    assert held is not None
    publish(outbound)
    [row] = deliveries(outbound)

    before = datetime.now(UTC)
    assert delivery.deliver(row.id) == "deferred"
    [row] = deliveries(outbound)
    assert row.status == "pending" and row.attempt_count == 0
    assert row.next_attempt_at is not None
    assert (
        before + timedelta(seconds=0.7) <= row.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=1.3)
    )
    [job_id] = ScheduledJobRegistry(queue=Queue(EVENTS, connection=outbound.redis)).get_job_ids()
    assert job_id.startswith(f"delivery-{row.id}-1-deferred-")
    assert Job.fetch(job_id, connection=outbound.redis).args == (row.id, EVENTS, 1)  # waited once
    assert platform.receiver.requests() == []

    isolation.release(outbound.redis, endpoint_id, held)
    make_due(outbound)
    assert delivery.deliver(row.id, EVENTS, 1) == "success"
    assert isolation.in_flight(outbound.redis, endpoint_id) == 0  # its own slot was given back
    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 1


def test_a_slot_left_by_a_killed_worker_lapses_with_the_lease(redis: Redis) -> None:
    assert isolation.acquire(redis, 7, cap=1, lease=0.3) is not None
    assert isolation.acquire(redis, 7, cap=1, lease=0.3) is None
    time.sleep(0.4)
    assert isolation.acquire(redis, 7, cap=1, lease=0.3) is not None
    assert isolation.acquire(redis, 8, cap=1, lease=0.3) is not None  # endpoints do not share slots


def test_slots_are_taken_as_many_as_are_free_in_one_call_and_given_back_together(redis: Redis) -> None:
    held = isolation.acquire(redis, 9, cap=4, lease=60)
    taken = isolation.acquire_many(redis, 9, 5, cap=4, lease=60)
    assert len(taken) == 3 and held not in taken and isolation.in_flight(redis, 9) == 4
    assert isolation.acquire_many(redis, 9, 2, cap=4, lease=60) == []  # full: none, not some
    isolation.release(redis, 9, *taken)
    assert isolation.in_flight(redis, 9) == 1
    assert len(isolation.acquire_many(redis, 9, 2, cap=4, lease=60)) == 2


def test_an_endpoint_is_slow_from_its_average_and_stops_being_slow_below_half(redis: Redis) -> None:
    policy = isolation.IsolationPolicy(slow_after=2.0, smoothing=0.5)
    assert isolation.observe(redis, 1, 100, policy) is False
    assert isolation.observe(redis, 1, 5000, policy) is True  # average 2550 ms
    assert isolation.observe(redis, 1, 500, policy) is True  # 1525 ms: above half the threshold
    assert isolation.observe(redis, 1, 100, policy) is False  # 812 ms
    assert isolation.slow_endpoints(redis, [1, 2]) == set()
    isolation.observe(redis, 2, 9000, policy)
    assert isolation.slow_endpoints(redis, [1, 2]) == {2}


def test_a_round_folds_its_answers_locally_as_redis_would_and_writes_them_in_one_call(redis: Redis) -> None:
    """The dispatcher's Observer decides per answer from a local copy of the average and writes the round's
    durations at its end: the same average and flag as one `observe` per answer."""
    policy = isolation.IsolationPolicy(slow_after=2.0, smoothing=0.5)
    durations = [100, 5000, 500, 100, 3000, 4000, 50]
    one_by_one = [isolation.observe(redis, 1, d, policy) for d in durations]

    isolation.observe(redis, 2, 100, policy)  # the round starts from a stored average, as round 1 above did
    observer = isolation.Observer(redis, 2, policy)
    local = [observer.add(d) for d in durations[1:]]
    assert local == one_by_one[1:] == [True, True, False, False, True, True]
    assert redis.hget(isolation.stats_key(2), "avg_ms") == b"100"  # nothing written during the round
    assert isolation.observe_many(redis, 2, observer.durations, policy) is True
    assert redis.hgetall(isolation.stats_key(2)) == redis.hgetall(isolation.stats_key(1))


def test_waits_grow_and_stay_short() -> None:
    assert 1.0 <= isolation.wait_delay(0) <= 1.25
    assert 3.0 <= isolation.wait_delay(2) <= 5.0
    assert isolation.wait_delay(50) <= isolation.WAIT_MAX * 1.25


def test_slow_endpoints_stay_home_while_no_worker_serves_the_webhooks_queue(
    outbound: Runtime, platform: Server
) -> None:
    endpoint_id = add_endpoint(outbound, platform)
    isolation.observe(outbound.redis, endpoint_id, 5000)
    publish(outbound)
    assert len(queued_ids(outbound.redis, EVENTS)) == 1 and queued_ids(outbound.redis, WEBHOOKS) == []
    drain(outbound)
    assert [r.status for r in deliveries(outbound)] == ["succeeded"]


def test_slow_endpoints_are_delivered_from_the_webhooks_queue(
    outbound: Runtime, platform: Server, webhooks_worker_alive: None
) -> None:
    slow = add_endpoint(outbound, platform)
    fast = add_endpoint(outbound, platform)
    isolation.observe(outbound.redis, slow, 5000)
    publish(outbound)  # fan-out wakes each endpoint's dispatcher on the endpoint's queue
    assert queued_calls(outbound.redis, WEBHOOKS) == [(scheduling.DISPATCH_FUNC, (slow, EVENTS))]
    assert queued_calls(outbound.redis, EVENTS) == [(scheduling.DISPATCH_FUNC, (fast, EVENTS))]

    drain(outbound)  # the general worker never touches the slow endpoint's delivery
    assert {r.endpoint_id: r.status for r in deliveries(outbound)} == {slow: "pending", fast: "succeeded"}
    build_worker(outbound, [WEBHOOKS]).work(burst=True, with_scheduler=False)
    assert {r.status for r in deliveries(outbound)} == {"succeeded"}


def test_a_delivery_queued_before_its_endpoint_turned_slow_moves_without_an_attempt(
    outbound: Runtime, platform: Server, webhooks_worker_alive: None
) -> None:
    endpoint_id = add_endpoint(outbound, platform)
    publish(outbound)
    [row] = deliveries(outbound)
    assert queued_calls(outbound.redis, EVENTS) == [(scheduling.DISPATCH_FUNC, (endpoint_id, EVENTS))]
    isolation.observe(outbound.redis, endpoint_id, 5000)  # another delivery's attempt was slow

    drain(outbound)  # the dispatcher hands the delivery to a one-delivery job on the webhooks queue
    [row] = deliveries(outbound)
    assert row.status == "pending" and row.attempt_count == 0 and platform.receiver.requests() == []
    moved = scheduling.job_id(row.id, 1)
    assert queued_ids(outbound.redis, WEBHOOKS) == [moved]
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0  # the moved job counts as alive

    build_worker(outbound, [WEBHOOKS]).work(burst=True, with_scheduler=False)
    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 1
    assert Job.fetch(moved, connection=outbound.redis).return_value() == "success"


def test_the_sweeper_moves_jobs_off_a_queue_no_worker_serves(outbound: Runtime, platform: Server) -> None:
    endpoint_id = add_endpoint(outbound, platform)
    publish(outbound)
    [row] = deliveries(outbound)
    stranded = Queue(WEBHOOKS, connection=outbound.redis)
    Queue(EVENTS, connection=outbound.redis).empty()  # the dispatcher is gone, with its flag
    outbound.redis.delete(scheduling.dispatch_flag_key(endpoint_id))
    stranded.enqueue(scheduling.JOB_FUNC, row.id, EVENTS, job_id=scheduling.job_id(row.id, 1))
    isolation.observe(outbound.redis, endpoint_id, 5000)
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 1
    drain(outbound)
    assert [r.status for r in deliveries(outbound)] == ["succeeded"]


# --- real worker processes --------------------------------------------------------------------------------

SLOW_LATENCY = 0.6
EVENTS_PUBLISHED = 8


@pytest.mark.slow
def test_a_slow_endpoint_does_not_hold_back_a_fast_one(
    settings: Settings, rt: Runtime, tmp_path: Path
) -> None:
    """One general worker and one webhooks worker: the fast endpoint's deliveries all arrive while the slow
    endpoint is still working through its backlog, one POST at a time, from the webhooks queue."""
    env = process_env(
        settings,
        tmp_path,
        WEBHOOK_ALLOW_PRIVATE_URLS="true",
        WEBHOOK_TIMEOUT_SECONDS="5",
        WEBHOOK_SLOW_AFTER_SECONDS="0.3",
        WEBHOOK_ENDPOINT_CONCURRENCY="1",
    )
    processes = Processes(env, tmp_path)
    fanout.install()
    with serve() as slow_platform, serve() as fast_platform:
        slow_platform.receiver.set_default(Fault(latency=SLOW_LATENCY))
        slow = add_endpoint(rt, slow_platform)
        fast = add_endpoint(rt, fast_platform)
        try:
            processes.start("worker", "worker", "--queues", "orders,events,sync,bulk")
            processes.start("webhooks", "worker", "--queues", WEBHOOKS)
            for name in (EVENTS, WEBHOOKS):
                wait_for(lambda n=name: rt.redis.scard(f"rq:workers:{n}"), 60, f"a worker on {name}")

            publish(rt, EVENTS_PUBLISHED)  # each event to both endpoints, the slow one's first

            def status(endpoint_id: int) -> list[str]:
                return [r.status for r in deliveries(rt, endpoint_id)]

            wait_for(lambda: set(status(fast)) == {"succeeded"}, 60, "the fast endpoint's deliveries")
            backlog = status(slow).count("pending")
            wait_for(lambda: set(status(slow)) == {"succeeded"}, 60, "the slow endpoint's deliveries")
        finally:
            processes.stop()
        # When the fast endpoint had everything, most of the slow endpoint's deliveries were still to come.
        assert backlog >= EVENTS_PUBLISHED // 2, backlog
        assert len(fast_platform.receiver.received()) == EVENTS_PUBLISHED
        assert len(slow_platform.receiver.received()) == EVENTS_PUBLISHED
        assert slow_platform.receiver.peak_in_progress == 1  # the cap: one POST at a time
        with rt.db.session() as session:
            counts = session.scalars(select(Delivery.attempt_count).where(Delivery.endpoint_id == slow)).all()
            assert set(counts) == {1}  # moving and waiting are not attempts
            assert session.query(DeliveryAttempt).count() == 2 * EVENTS_PUBLISHED
        finished = FinishedJobRegistry(queue=Queue(WEBHOOKS, connection=rt.redis)).get_job_ids()
        assert any(j.startswith("delivery-") for j in finished), finished  # sent from the webhooks queue
