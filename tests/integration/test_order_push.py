"""Order push job against the Shopify emulator: confirm once, recover a lost answer by lookup, reject on a
permanent error, and the sweeper's re-enqueue and takeover."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from rq.job import Job, JobStatus
from sqlalchemy import select, update

from config.settings import Settings
from connector.bench.shopify import add_shopify_merchant, bind_variants, create_orders
from connector.domain.errors import PermanentError, RetryableError
from connector.infra import queue, runtime
from connector.infra.models import EventPayload, Order, Variant
from connector.orders import push
from connector.sandbox.shopify.app import Server, serve
from connector.sandbox.shopify.faults import ApiFault
from tests.helpers import drain

TIMEOUT = 1.0


@pytest.fixture
def fast(settings: Settings, redis: Redis) -> Iterator[runtime.Runtime]:
    """The runtime with a short store timeout (a slow answer becomes a timeout quickly)."""
    instance = runtime.install(
        runtime.Runtime(
            # A lease of 5 s: a push job may run 4 s, room for a first request on a busy machine.
            settings=settings.model_copy(update={"http_timeout_seconds": TIMEOUT, "stale_after_seconds": 5}),
            redis_url=settings.redis_url,
        )
    )
    push._adapters.clear()
    yield instance
    instance.close()
    runtime._current = None
    push._adapters.clear()


@pytest.fixture
def shop() -> Iterator[Server]:
    with serve(maximum_available=10_000, restore_rate=1_000) as server:
        server.store.seed_catalog(3, 2, available=(1_000, 1_000))
        yield server


def _orders(rt: runtime.Runtime, server: Server, count: int) -> list[int]:
    merchant_id = add_shopify_merchant(rt, server.url)
    return create_orders(rt, merchant_id, bind_variants(rt, merchant_id, server.store), count)


def _order(rt: runtime.Runtime, order_id: int) -> Order:
    with rt.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order


def _events(rt: runtime.Runtime) -> list[tuple[str, dict[str, object]]]:
    with rt.db.session() as session:
        return [(t, d) for t, d in session.execute(select(EventPayload.type, EventPayload.data))]


def test_an_accepted_order_is_confirmed_once_with_its_store_id(fast, shop):
    (order_id,) = _orders(fast, shop, 1)

    ref = push.push_order(order_id)

    (created,) = shop.store.orders.values()
    assert ref == f"gid://shopify/Order/{created.legacy_resource_id}"
    order = _order(fast, order_id)
    assert (order.status, order.store_order_ref, order.push_attempts) == ("confirmed", ref, 1)
    assert order.store_order_name == f"#{created.number}" and order.push_started_at is None
    assert created.source_identifier == push.push_key(order.public_id)
    ((kind, data),) = _events(fast)
    assert kind == push.ORDER_CONFIRMED and data["store_order_id"] == ref

    assert push.push_order(order_id) is None  # idempotent: a confirmed order is left alone
    assert len(shop.store.orders) == 1 and len(_events(fast)) == 1


def test_an_answer_lost_to_a_timeout_is_found_before_any_second_create(fast, shop):
    (order_id,) = _orders(fast, shop, 1)
    # Two lookups and the shop's currency answer, then orderCreate runs at the store but answers after the client gave up.
    shop.emulator.faults.plan(ApiFault(), ApiFault(), ApiFault(), ApiFault.slow(TIMEOUT * 2))

    with pytest.raises(RetryableError) as failed:
        push.push_order(order_id)
    assert failed.value.retry_after is not None and failed.value.retry_after >= TIMEOUT
    order = _order(fast, order_id)
    assert (order.status, order.push_attempts, order.push_started_at) == ("accepted", 1, None)

    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while not shop.store.orders and datetime.now(UTC) < deadline:
        time.sleep(0.05)  # the slow answer finishes at the store
    ref = push.push_order(order_id)

    (created,) = shop.store.orders.values()  # exactly one: the retry found it
    assert ref == f"gid://shopify/Order/{created.legacy_resource_id}"
    assert _order(fast, order_id).push_attempts == 2


def test_a_permanent_store_error_rejects_the_order(fast, shop):
    (order_id,) = _orders(fast, shop, 1)
    with fast.db.session() as session:  # variants the store does not know
        for variant in session.scalars(select(Variant)):
            variant.external_id = f"gid://shopify/ProductVariant/{variant.id}"

    with pytest.raises(PermanentError):
        push.push_order(order_id)

    order = _order(fast, order_id)
    assert order.status == "rejected" and order.rejection_reason and "variant" in order.rejection_reason
    ((kind, data),) = _events(fast)
    assert kind == push.ORDER_REJECTED and data["order_id"] == order.public_id
    assert not shop.store.orders
    assert push.push_order(order_id) is None


def test_the_sweeper_requeues_lost_pushes_and_takes_over_dead_ones(fast, shop):
    lost, dead, fresh = _orders(fast, shop, 3)
    old = datetime.now(UTC) - timedelta(minutes=5)
    with fast.db.session() as session:
        session.execute(update(Order).values(created_at=old))
        session.execute(update(Order).where(Order.id == fresh).values(created_at=datetime.now(UTC)))
        # A worker died holding `dead`: its lease is old and its job still looks started.
        session.execute(update(Order).where(Order.id == dead).values(push_attempts=1, push_started_at=old))
    push.enqueue(fast, dead)
    job = fast.queues["orders"].fetch_job(push.job_id(dead))
    assert job is not None
    job.set_status(JobStatus.STARTED)

    assert push.sweep(fast) == [lost, dead]
    assert push.sweep(fast) == []  # queued now: not again
    assert fast.queues.job_status(push.job_id(lost)) == "queued"

    drain(fast)
    assert {_order(fast, i).status for i in (lost, dead, fresh)} == {"confirmed", "accepted"}
    assert _order(fast, fresh).status == "accepted"  # too young for the sweeper, and never enqueued
    assert len(shop.store.orders) == 2
    assert _order(fast, dead).push_attempts == 2  # looked up first: it was not in the store, so created


def test_a_stale_attempt_is_taken_over_once_per_lease(fast, shop):
    """The job taking a stale attempt over runs under the lost one's job id: while it waits (on a row the lost
    worker still holds) RQ calls it started, as it called the lost one, and no sweep queues another copy
    until a lease has passed."""
    [dead] = _orders(fast, shop, 1)
    old = datetime.now(UTC) - timedelta(minutes=5)
    with fast.db.session() as session:
        session.execute(update(Order).values(created_at=old, push_attempts=1, push_started_at=old))
    push.enqueue(fast, dead)
    fast.queues["orders"].fetch_job(push.job_id(dead)).set_status(JobStatus.STARTED)  # type: ignore[union-attr]

    assert push.sweep(fast) == [dead]
    # A worker takes the takeover and waits on the order's row: its job looks as the lost one did.
    fast.queues["orders"].fetch_job(push.job_id(dead)).set_status(JobStatus.STARTED)  # type: ignore[union-attr]
    assert push.sweep(fast) == [] and push.sweep(fast) == []

    (mark,) = fast.redis.keys("storelink:order-push-taken-over:*")
    assert 0 < fast.redis.ttl(mark) <= queue.lease_seconds(fast.settings)
    fast.redis.delete(mark)  # a lease later: a takeover that was itself lost is taken over again
    assert push.sweep(fast) == [dead]


def test_a_push_whose_worker_died_before_claiming_is_taken_over(fast, shop):
    """The worker took the job and was killed before recording an attempt: RQ calls the job started forever
    and the order has no lease, so only the job's own start time tells that nothing is running it."""
    [order_id] = _orders(fast, shop, 1)
    old = datetime.now(UTC) - timedelta(minutes=5)
    with fast.db.session() as session:
        session.execute(update(Order).values(created_at=old))
    push.enqueue(fast, order_id)
    job = fast.queues["orders"].fetch_job(push.job_id(order_id))
    assert job is not None
    job.set_status(JobStatus.STARTED)
    job.started_at = datetime.now(UTC)
    job.save()
    assert push.sweep(fast) == []  # it may still be about to claim
    job.started_at = old
    job.save()
    assert push.sweep(fast) == [order_id]
    drain(fast)
    assert _order(fast, order_id).status == "confirmed"
    assert len(shop.store.orders) == 1


def test_a_push_taken_off_the_queue_by_a_worker_that_died_at_once_is_taken_over(fast, shop):
    """The worker popped the job from the queue and was killed before RQ marked it started: the job still
    says queued, but no queue holds it, so nothing would ever run it."""
    first, second = _orders(fast, shop, 2)
    old = datetime.now(UTC) - timedelta(minutes=5)
    with fast.db.session() as session:
        session.execute(update(Order).values(created_at=old))
    for order_id in (first, second):
        push.enqueue(fast, order_id)
        job = fast.queues["orders"].fetch_job(push.job_id(order_id))
        assert job is not None
        job.enqueued_at = old
        job.save()
    fast.redis.lrem(fast.queues["orders"].key, 0, push.job_id(first))  # popped by the dead worker
    assert fast.queues.job_status(push.job_id(first)) == JobStatus.QUEUED

    assert push.sweep(fast) == [first]  # `second` is still waiting in the queue: left alone
    drain(fast)
    assert {_order(fast, i).status for i in (first, second)} == {"confirmed"}
    assert len(shop.store.orders) == 2


def test_request_push_enqueues_after_commit_and_never_on_rollback(fast, shop):
    first, second = _orders(fast, shop, 2)
    with fast.db.session() as session:
        push.request_push(session, first)
        assert fast.queues.job_status(push.job_id(first)) is None  # not before the commit
    assert fast.queues.job_status(push.job_id(first)) == JobStatus.QUEUED

    with pytest.raises(RuntimeError), fast.db.session() as session:
        push.request_push(session, second)
        raise RuntimeError("checkout failed")
    assert fast.queues.job_status(push.job_id(second)) is None


def test_the_pushes_a_transaction_requested_are_queued_by_one_job_after_its_commit(fast, shop):
    orders = _orders(fast, shop, 3)
    batch_id = f"order-pushes-{orders[0]}-3"
    with fast.db.session() as session:
        for order_id in orders:
            push.request_push(session, order_id)
        assert fast.queues.job_status(batch_id) is None
    assert fast.queues[queue.ORDERS].job_ids == [batch_id]
    job = Job.fetch(batch_id, connection=fast.redis)
    assert job.func_name == push.QUEUE_PUSHES_FUNC and job.args == (orders,)
    assert job.retries_left == len(push.PUSH_RETRY_BASE) and job.failure_ttl == 7 * 24 * 3600

    assert push.queue_pushes(orders) == 3  # what the worker runs
    assert fast.queues[queue.ORDERS].job_ids == [batch_id, *(push.job_id(i) for i in orders)]
    pushed = Job.fetch(push.job_id(orders[1]), connection=fast.redis)
    assert pushed.args == (orders[1],) and pushed.timeout == queue.attempt_timeout(fast.settings)
    assert pushed.retries_left == len(push.PUSH_RETRY_BASE) and pushed.result_ttl == 3600
    assert push.queue_pushes(orders) == 0  # each push queued once, whoever queued it first

    drain(fast)
    assert {_order(fast, i).status for i in orders} == {"confirmed"}
    assert len(shop.store.orders) == 3


def test_one_new_orders_push_is_queued_itself(fast, shop):
    (order_id,) = _orders(fast, shop, 1)
    with fast.db.session() as session:
        push.request_push(session, order_id)
    assert fast.queues[queue.ORDERS].job_ids == [push.job_id(order_id)]
    job = Job.fetch(push.job_id(order_id), connection=fast.redis)
    assert job.func_name == push.JOB_FUNC and job.args == (order_id,)
