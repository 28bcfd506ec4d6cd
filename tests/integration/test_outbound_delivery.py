"""Outbound webhooks end to end: fan-out in the publishing transaction, RQ jobs, the sandbox receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import svix.webhooks
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.utils import utcformat
from sqlalchemy import func, select, update

from connector.infra import outbox, problems, runtime
from connector.infra.models import Delivery, DeliveryAttempt, WebhookEndpoint
from connector.infra.models_ops import Problem
from connector.sandbox.platform import Fault, Server, serve
from tests.helpers import drain, wait_for
from webhooks.outbound import delivery, dispatch, fanout, isolation, scheduling
from webhooks.outbound.endpoints import create_endpoint, rotate_secret, update_endpoint

Runtime = runtime.Runtime


@pytest.fixture
def outbound(rt: Runtime) -> Iterator[Runtime]:
    delivery.configure(delivery.DeliveryConfig(allow_private=True, timeout=5))
    fanout.install()
    yield rt
    fanout.uninstall()
    delivery.configure()


@pytest.fixture
def platform() -> Iterator[Server]:
    with serve() as server:
        yield server


def add_endpoint(rt: Runtime, server: Server, event_types: list[str] | None = None) -> tuple[int, str]:
    with rt.db.session() as session:
        created = create_endpoint(
            session, rt.secrets, url=server.url, event_types=event_types or ["*"], allow_private=True
        )
        endpoint_id = created.endpoint.id
    server.receiver.add_secret(created.secret)
    return endpoint_id, created.secret


def publish(rt: Runtime, *types: str, merchant_id: int | None = None) -> list[str]:
    with rt.db.session() as session:
        outbox.publish(
            session, [outbox.DomainEvent(t, merchant_id, {"n": i, "type": t}) for i, t in enumerate(types)]
        )
    with rt.db.session() as session:
        return list(session.scalars(select(Delivery.payload_id).order_by(Delivery.id)))


def deliveries(rt: Runtime) -> list[Delivery]:
    with rt.db.session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def attempts(rt: Runtime, delivery_id: int) -> list[DeliveryAttempt]:
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.id)
            )
        )


def endpoint(rt: Runtime, endpoint_id: int) -> WebhookEndpoint:
    with rt.db.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row


def scheduled(redis: Redis) -> ScheduledJobRegistry:
    return ScheduledJobRegistry(queue=Queue("events", connection=redis))


def run_scheduled_now(rt: Runtime) -> int:
    """Time passes: every delivery becomes due and RQ's scheduled delivery jobs move to the queue."""
    with rt.db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    registry = scheduled(rt.redis)
    queue = Queue("events", connection=rt.redis)
    moved = 0
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        registry.remove(job_id)
        assert job is not None
        queue.enqueue_job(job)
        moved += 1
    drain(rt)
    return moved


def test_publish_creates_deliveries_only_for_subscribed_enabled_endpoints(
    outbound: Runtime, platform: Server
) -> None:
    orders, _ = add_endpoint(outbound, platform, ["order.*"])
    products, _ = add_endpoint(outbound, platform, ["product.updated"])
    disabled, _ = add_endpoint(outbound, platform, ["*"])
    with outbound.db.session() as session:
        update_endpoint(session, disabled, enabled=False)

    publish(outbound, "order.confirmed", "product.deleted", "inventory.updated")

    rows = deliveries(outbound)
    assert [r.endpoint_id for r in rows] == [orders]
    assert Queue("events", connection=outbound.redis).count == 1
    drain(outbound)
    received = platform.receiver.received()
    assert [r.type for r in received] == ["order.confirmed"]
    assert products not in {r.endpoint_id for r in deliveries(outbound)}


def test_nothing_when_the_transaction_rolls_back(outbound: Runtime, platform: Server) -> None:
    add_endpoint(outbound, platform)
    with pytest.raises(RuntimeError), outbound.db.session() as session:
        outbox.publish(session, [outbox.DomainEvent("order.confirmed", None, {"x": 1})])
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1  # written in the transaction
        raise RuntimeError("the change failed")
    assert deliveries(outbound) == []
    assert Queue("events", connection=outbound.redis).count == 0
    publish(outbound, "order.confirmed")  # the session's pending list was cleared: only the new one
    assert Queue("events", connection=outbound.redis).count == 1


def test_delivered_and_verified_by_the_receiver(outbound: Runtime, platform: Server) -> None:
    _, secret = add_endpoint(outbound, platform, ["order.*"])
    publish(outbound, "order.confirmed")
    drain(outbound)

    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 1 and row.last_status_code == 200
    [got] = platform.receiver.received()
    assert got.webhook_id == row.payload_id
    assert got.type == "order.confirmed" and got.data == {"n": 0, "type": "order.confirmed"}
    standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    svix.webhooks.Webhook(secret).verify(got.body, got.headers)
    [attempt] = attempts(outbound, row.id)
    assert attempt.status_code == 200 and attempt.error is None and attempt.duration_ms >= 0


def test_500_then_200_records_two_attempts(outbound: Runtime, platform: Server) -> None:
    add_endpoint(outbound, platform)
    platform.receiver.plan(Fault(500, body="boom"))
    publish(outbound, "order.confirmed")
    drain(outbound)

    [row] = deliveries(outbound)
    assert row.status == "pending" and row.attempt_count == 1 and row.last_status_code == 500
    assert row.next_attempt_at is not None
    wait = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 2 <= wait <= 6.5  # 5 s ± 20%
    assert scheduled(outbound.redis).get_job_ids() == [f"delivery-{row.id}-2"]

    assert run_scheduled_now(outbound) == 1
    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 2
    history = attempts(outbound, row.id)
    assert [a.status_code for a in history] == [500, 200]
    assert history[0].response_excerpt == "boom"
    assert len(platform.receiver.received()) == 1


def test_410_disables_the_endpoint(outbound: Runtime, platform: Server) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    platform.receiver.plan(410)
    publish(outbound, "order.confirmed")
    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "failed" and row.last_status_code == 410
    ep = endpoint(outbound, endpoint_id)
    assert not ep.enabled and "410" in (ep.disabled_reason or "")
    assert scheduled(outbound.redis).count == 0
    publish(outbound, "order.confirmed")  # a disabled endpoint gets no new deliveries
    assert len(deliveries(outbound)) == 1


def test_400_fails_at_once(outbound: Runtime, platform: Server) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    platform.receiver.plan(400)
    publish(outbound, "order.confirmed")
    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "failed" and row.attempt_count == 1 and row.next_attempt_at is None
    assert row.last_error == "HTTP 400"
    assert scheduled(outbound.redis).count == 0
    assert endpoint(outbound, endpoint_id).enabled
    assert len(platform.receiver.requests()) == 1


def test_429_retry_after_is_honoured(outbound: Runtime, platform: Server) -> None:
    add_endpoint(outbound, platform)
    platform.receiver.plan(Fault(429, retry_after="120"))
    before = datetime.now(UTC)
    publish(outbound, "order.confirmed")
    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "pending" and row.last_status_code == 429
    assert row.next_attempt_at is not None and row.next_attempt_at >= before + timedelta(seconds=120)
    registry = scheduled(outbound.redis)
    job_id = f"delivery-{row.id}-2"
    assert registry.get_job_ids() == [job_id]
    assert registry.get_scheduled_time(job_id) >= before + timedelta(seconds=120)


def test_dropped_connection_is_retried(outbound: Runtime, platform: Server) -> None:
    add_endpoint(outbound, platform)
    platform.receiver.plan(Fault(drop=True))
    publish(outbound, "order.confirmed")
    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "pending" and row.last_status_code is None and row.last_error
    run_scheduled_now(outbound)
    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 2


def test_breaker_opens_after_five_failures_and_defers(outbound: Runtime, platform: Server) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    platform.receiver.set_default(503)
    publish(outbound, *["order.confirmed"] * 6)
    drain(outbound)

    assert len(platform.receiver.requests()) == 5
    ep = endpoint(outbound, endpoint_id)
    assert ep.consecutive_failures == 5
    assert ep.circuit_open_until is not None
    assert 50 <= (ep.circuit_open_until - datetime.now(UTC)).total_seconds() <= 61
    rows = deliveries(outbound)
    assert sorted(r.attempt_count for r in rows) == [0, 1, 1, 1, 1, 1]
    [sixth] = [r for r in rows if r.attempt_count == 0]
    assert sixth.id == rows[5].id  # jobs run in the order the events were published
    assert sixth.attempt_count == 0 and sixth.next_attempt_at == ep.circuit_open_until
    assert attempts(outbound, sixth.id) == []
    assert any(
        j.startswith(f"delivery-{sixth.id}-1-deferred-") for j in scheduled(outbound.redis).get_job_ids()
    )

    # The cool-down ends: one probe goes out, succeeds, and the breaker closes.
    platform.receiver.set_default(200)
    with outbound.db.session() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(WebhookEndpoint).values(circuit_open_until=past))
        session.execute(update(Delivery).where(Delivery.id == sixth.id).values(next_attempt_at=past))
    assert delivery.deliver(sixth.id) == "success"
    ep = endpoint(outbound, endpoint_id)
    assert ep.consecutive_failures == 0 and ep.circuit_open_until is None


def test_failed_probe_reopens_for_longer(outbound: Runtime, platform: Server) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    platform.receiver.set_default(500)
    publish(outbound, *["order.confirmed"] * 6)
    drain(outbound)
    sixth = deliveries(outbound)[5]
    with outbound.db.session() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(WebhookEndpoint).values(circuit_open_until=past))
        session.execute(update(Delivery).where(Delivery.id == sixth.id).values(next_attempt_at=past))
    assert delivery.deliver(sixth.id) == "retry"
    ep = endpoint(outbound, endpoint_id)
    assert ep.consecutive_failures == 6 and ep.circuit_open_until is not None
    assert (ep.circuit_open_until - datetime.now(UTC)).total_seconds() > 110


def test_sweeper_re_enqueues_after_redis_is_flushed(
    outbound: Runtime, platform: Server, redis: Redis
) -> None:
    add_endpoint(outbound, platform)
    publish(outbound, "order.confirmed", "order.cancelled")
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0  # their jobs are alive
    redis.flushdb()
    assert Queue("events", connection=redis).count == 0
    assert delivery.sweep_deliveries(outbound, grace=timedelta(minutes=5)) == 0  # not overdue enough yet
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 2
    drain(outbound)
    assert {r.status for r in deliveries(outbound)} == {"succeeded"}
    assert len(platform.receiver.received()) == 2
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0


def test_replay_resets_a_failed_delivery_and_it_succeeds(outbound: Runtime, platform: Server) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    platform.receiver.plan(400)
    publish(outbound, "order.confirmed")
    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "failed"

    with outbound.db.session() as session:
        assert delivery.replay_failed(session, endpoint_id=endpoint_id + 1) == []
        assert delivery.replay(session, [row.id]) == [row.id]
    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "succeeded"
    assert [a.status_code for a in attempts(outbound, row.id)] == [400, 200]
    with outbound.db.session() as session:
        assert delivery.replay(session, [row.id]) == []  # only failed deliveries are replayed


def test_deliver_twice_sends_once(outbound: Runtime, platform: Server) -> None:
    add_endpoint(outbound, platform)
    publish(outbound, "order.confirmed")
    [row] = deliveries(outbound)
    assert delivery.deliver(row.id) == "success"
    assert delivery.deliver(row.id) == "skipped"
    drain(outbound)  # the job enqueued at publish finds it done
    assert len(platform.receiver.requests()) == 1
    assert len(attempts(outbound, row.id)) == 1
    assert delivery.deliver(row.id + 999) == "missing"


def test_rotation_delivery_verifies_with_the_previous_secret(outbound: Runtime, platform: Server) -> None:
    endpoint_id, old = add_endpoint(outbound, platform)
    with outbound.db.session() as session:
        new = rotate_secret(session, outbound.secrets, endpoint_id).secret
    assert new != old
    platform.receiver.set_secrets([old])  # the platform has not picked up the new secret yet
    publish(outbound, "order.confirmed")
    drain(outbound)
    [got] = platform.receiver.received()
    standardwebhooks.Webhook(old).verify(got.body, got.headers)
    svix.webhooks.Webhook(new).verify(got.body, got.headers)

    with outbound.db.session() as session:  # grace over: only the new secret signs
        rotate_secret(session, outbound.secrets, endpoint_id, grace=timedelta(0))
    platform.receiver.plan(Fault(400))  # not reached: verification fails first
    publish(outbound, "order.cancelled")
    drain(outbound)
    assert platform.receiver.requests()[-1].status == 401


def test_the_sweeper_replaces_a_job_whose_worker_was_killed(outbound: Runtime, platform: Server) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    publish(outbound, "order.confirmed")
    [row] = deliveries(outbound)
    job_id = f"delivery-{row.id}-1"
    # The delivery went to a one-delivery job (as a dispatcher hands over one it does not send itself).
    queue = Queue("events", connection=outbound.redis)
    queue.empty()
    outbound.redis.delete(scheduling.dispatch_flag_key(endpoint_id))
    assert scheduling.enqueue_now([(row.id, 1)], redis=outbound.redis) == 1
    # A worker takes the job, claims the delivery and is SIGKILLed mid-POST: RQ still says "started".
    worker = SimpleWorker([queue], connection=outbound.redis)
    worker.register_birth()
    taken = Queue.dequeue_any([queue], None, connection=outbound.redis)
    assert taken is not None
    job, _ = taken
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    assert Job.fetch(job_id, connection=outbound.redis).get_status() == JobStatus.STARTED
    with outbound.db.session() as session:  # its lease has run out
        session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0  # it may still be running

    long_ago = datetime.now(UTC) - delivery.current_config().lease - timedelta(seconds=5)
    outbound.redis.hset(job.key, "started_at", utcformat(long_ago))
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 1
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0  # replaced once
    assert StartedJobRegistry(queue=queue).get_job_ids(cleanup=False) == []  # RQ will not retry it too
    assert queue.job_ids == [job_id]  # under the same id

    drain(outbound)
    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 1
    assert len(platform.receiver.received()) == 1


def test_an_attempt_that_outlived_its_lease_is_history_only(outbound: Runtime, platform: Server) -> None:
    add_endpoint(outbound, platform)
    platform.receiver.plan(Fault(latency=1.0))  # the first POST is slow, the next one is not
    publish(outbound, "order.confirmed")
    [row] = deliveries(outbound)
    late = threading.Thread(target=delivery.deliver, args=(row.id,))
    late.start()  # claims, then waits on the slow platform
    wait_for(platform.receiver.in_progress, 10, "the first POST")
    with outbound.db.session() as session:  # its lease runs out; the sweeper's job claims and sends again
        session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert delivery.deliver(row.id) == "success"
    late.join(10)

    [row] = deliveries(outbound)
    assert row.status == "succeeded" and row.attempt_count == 1
    assert [a.status_code for a in attempts(outbound, row.id)] == [200, 200]
    assert len(platform.receiver.received()) == 1 and platform.receiver.duplicates == 1


# --- the dispatcher: new deliveries to one endpoint in rounds ----------------------------------------------


def test_a_burst_to_one_endpoint_is_one_dispatcher_job_and_every_attempt_is_recorded(
    outbound: Runtime, platform: Server
) -> None:
    endpoint_id, _ = add_endpoint(outbound, platform)
    publish(outbound, *["inventory.updated"] * 30)
    publish(outbound, *["inventory.updated"] * 30)  # a second commit while the first burst waits
    queue = Queue("events", connection=outbound.redis)
    assert [(j.func_name, j.args) for j in queue.jobs] == [
        (scheduling.DISPATCH_FUNC, (endpoint_id, "events"))
    ]

    drain(outbound)
    rows = deliveries(outbound)
    assert len(rows) == 60 and {(r.status, r.attempt_count, r.last_status_code) for r in rows} == {
        ("succeeded", 1, 200)
    }
    assert len(platform.receiver.received()) == 60 and platform.receiver.duplicates == 0
    with outbound.db.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 60
    assert not scheduling.dispatching_endpoints(outbound.redis, [endpoint_id])  # it let go of its flag
    publish(outbound, "order.confirmed")  # so the next delivery wakes a new one
    assert [j.func_name for j in queue.jobs] == [scheduling.DISPATCH_FUNC]


def test_a_round_of_successes_is_recorded_as_one_attempt_each_would_be(
    outbound: Runtime, platform: Server
) -> None:
    """The dispatcher records an all-success round in bulk: each delivery succeeded on attempt 1 with its
    attempt row, the endpoint's failure count is reset and its open failing problem cleared."""
    endpoint_id, _ = add_endpoint(outbound, platform)
    with outbound.db.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.consecutive_failures = 0
        problems.raise_problem(session, problems.ENDPOINT_FAILING, endpoint_id=endpoint_id, detail="x")
    platform.receiver.set_default(Fault(body="ok" * 600))  # an excerpt longer than is kept
    publish(outbound, *["order.confirmed"] * 5)
    assert dispatch.dispatch(endpoint_id, "events") == {"success": 5}
    rows = deliveries(outbound)
    assert {
        (r.status, r.attempt_count, r.last_status_code, r.last_error, r.next_attempt_at) for r in rows
    } == {("succeeded", 1, 200, None, None)}
    for r in rows:
        [attempt] = attempts(outbound, r.id)
        assert attempt.status_code == 200 and attempt.error is None
        assert attempt.response_excerpt == ("ok" * 600)[: delivery.EXCERPT_CHARS]
    assert endpoint(outbound, endpoint_id).consecutive_failures == 0
    with outbound.db.session() as session:
        assert not session.scalars(select(Problem).where(Problem.open_key.is_not(None))).all()
    assert isolation.in_flight(outbound.redis, endpoint_id) == 0


def test_a_dispatcher_round_stops_at_the_first_failure_and_the_rest_go_one_by_one(
    outbound: Runtime, platform: Server
) -> None:
    delivery.configure(
        delivery.DeliveryConfig(
            allow_private=True, timeout=5, isolation=isolation.IsolationPolicy(concurrency=1)
        )
    )
    endpoint_id, _ = add_endpoint(outbound, platform)
    platform.receiver.plan(200, 500)  # the second POST fails, the others succeed
    publish(outbound, *["order.confirmed"] * 4)
    drain(outbound)
    rows = deliveries(outbound)
    assert [r.status for r in rows] == ["succeeded", "pending", "succeeded", "succeeded"]
    assert [r.attempt_count for r in rows] == [1, 1, 1, 1]  # handing over is not an attempt
    assert rows[1].last_status_code == 500 and rows[1].next_attempt_at is not None
    # The two after the failure were sent by one-delivery jobs, which apply the breaker's rules.
    finished = FinishedJobRegistry(queue=Queue("events", connection=outbound.redis)).get_job_ids()
    assert {scheduling.job_id(rows[2].id, 1), scheduling.job_id(rows[3].id, 1)} <= set(finished)
    assert endpoint(outbound, endpoint_id).consecutive_failures == 0


def test_a_dispatcher_round_out_of_time_on_a_healthy_endpoint_leaves_the_rest_to_its_next_round(
    outbound: Runtime, platform: Server
) -> None:
    """A round sends only while its claim is young (half the lease margin); on a healthy endpoint what it
    did not start is released and claimed again by the next round, not handed to one-delivery jobs."""
    delivery.configure(
        delivery.DeliveryConfig(
            allow_private=True,
            timeout=5,
            lease_margin=timedelta(seconds=0.2),  # a round starts POSTs for 0.1 s
            isolation=isolation.IsolationPolicy(concurrency=1),
        )
    )
    add_endpoint(outbound, platform)
    platform.receiver.set_default(Fault(latency=0.06))
    publish(outbound, *["order.confirmed"] * 8)
    drain(outbound)
    rows = deliveries(outbound)
    assert {(r.status, r.attempt_count) for r in rows} == {("succeeded", 1)}
    assert len(platform.receiver.received()) == 8 and platform.receiver.duplicates == 0
    ran = FinishedJobRegistry(queue=Queue("events", connection=outbound.redis)).get_job_ids()
    assert not [job for job in ran if job.startswith("delivery-")]  # no one-delivery job
    dispatched = [Job.fetch(job, connection=outbound.redis) for job in ran]
    assert sum(job.return_value().get("released", 0) for job in dispatched) > 0  # rounds ran out of time


def test_a_dispatcher_waiting_in_a_busy_queue_keeps_its_deliveries_after_its_flag_lapses(
    outbound: Runtime, platform: Server
) -> None:
    """Workers busy with other queues leave the dispatcher job waiting longer than its flag lives: the
    sweeper does not take its deliveries one by one, and new fan-outs enqueue no second dispatcher."""
    endpoint_id, _ = add_endpoint(outbound, platform)
    publish(outbound, *["order.confirmed"] * 3)
    outbound.redis.delete(scheduling.dispatch_flag_key(endpoint_id))  # the flag lapses; the job still waits
    assert scheduling.dispatching_endpoints(outbound.redis, [endpoint_id]) == {endpoint_id}
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0
    publish(outbound, "order.confirmed")
    queue = Queue("events", connection=outbound.redis)
    assert [j.func_name for j in queue.jobs] == [scheduling.DISPATCH_FUNC]
    drain(outbound)
    assert {(r.status, r.attempt_count) for r in deliveries(outbound)} == {("succeeded", 1)}
    assert len(platform.receiver.received()) == 4 and platform.receiver.duplicates == 0


def test_a_dispatcher_killed_mid_round_loses_nothing(outbound: Runtime, platform: Server) -> None:
    """Its claims hold until the lease runs out and its flag lapses; then the sweeper sends them."""
    endpoint_id, _ = add_endpoint(outbound, platform)
    publish(outbound, *["order.confirmed"] * 3)
    with outbound.db.session() as session:  # the dispatcher claimed all three, then its worker died
        session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC) + timedelta(minutes=1)))
    Queue("events", connection=outbound.redis).empty()
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0  # claimed: not overdue
    with outbound.db.session() as session:  # the lease runs out
        session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 0  # the flag still stands for it
    outbound.redis.delete(scheduling.dispatch_flag_key(endpoint_id))  # the flag lapses
    assert delivery.sweep_deliveries(outbound, grace=timedelta(0)) == 3
    drain(outbound)
    assert {(r.status, r.attempt_count) for r in deliveries(outbound)} == {("succeeded", 1)}
    assert len(platform.receiver.received()) == 3
