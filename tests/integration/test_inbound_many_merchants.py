"""Store webhooks of many merchants through HTTP, drained by the real worker: a few jobs (one per shard of
merchants) apply them, each merchant's in store-time order, a poisoned one alone failing, none twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import event, select

from connector.app import create_app
from connector.bench.scale_intake import make_merchants
from connector.infra import runtime
from connector.infra.models import InboundEvent, InventoryLevel, Variant
from connector.infra.queue import EVENTS
from connector.sandbox.feed_push import FeedPusher
from tests.helpers import drain, event_counts
from webhooks.inbound import drain as inbound_drain
from webhooks.inbound import receiver, scheduling

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
MERCHANTS = max(12, 3 * scheduling.SHARDS)
"""More merchants than shards, so that each drain job has several."""


class Stores:
    """`MERCHANTS` feed merchants with bound variants, each with a pusher posting through the Flask client."""

    def __init__(self, rt: runtime.Runtime, tmp_path: Path) -> None:
        self.rt = rt
        self.shops = make_merchants(rt, tmp_path, MERCHANTS, "many")
        receiver.merchants.clear()
        self.client = create_app(rt.settings, rt).test_client()
        self.pushers = {mid: FeedPusher(f"/webhooks/feed/{mid}", secret) for mid, secret, _ in self.shops}
        self.ids = [mid for mid, _, _ in self.shops]

    def push(self, merchant_id: int, items: list[tuple[str, int]], at: datetime) -> None:
        pusher = self.pushers[merchant_id]
        delivery = pusher.inventory(items, at=at)
        response = self.client.post(pusher.url, data=delivery.body, headers=delivery.headers)
        assert response.status_code == 200 and response.json["status"] == "accepted"

    def push_newest_first(self) -> None:
        """Three changes of SKU-000001 per merchant, posted newest first: only store-time order applies all
        three (an older change applied after a newer one is skipped as stale)."""
        for mid in self.ids:
            for minutes in (2, 1, 0):
                self.push(mid, [("SKU-000001", mid * 10 + minutes)], T0 + timedelta(minutes=minutes))

    def stock(self, merchant_id: int, ref: str = "SKU-000001") -> int | None:
        with self.rt.db.session() as session:
            return session.scalar(
                select(InventoryLevel.available)
                .join(Variant, Variant.id == InventoryLevel.variant_id)
                .where(Variant.merchant_id == merchant_id, Variant.external_id == ref)
            )

    def statuses(self) -> dict[int, list[tuple[str, str | None]]]:
        out: dict[int, list[tuple[str, str | None]]] = {mid: [] for mid in self.ids}
        with self.rt.db.session() as session:
            for mid, status, note in session.execute(
                select(InboundEvent.merchant_id, InboundEvent.status, InboundEvent.error).order_by(
                    InboundEvent.triggered_at, InboundEvent.id
                )
            ):
                out[mid].append((status, note))
        return out

    def drain_results(self) -> list[dict[str, Any]]:
        """What the drain jobs the worker ran returned."""
        queue = Queue(EVENTS, connection=self.rt.redis)
        jobs = [Job.fetch(jid, connection=self.rt.redis) for jid in queue.finished_job_registry.get_job_ids()]
        return [job.return_value() for job in jobs if job.func_name == scheduling.JOB_FUNC]


@pytest.fixture
def stores(rt, tmp_path: Path) -> Stores:
    return Stores(rt, tmp_path)


def test_deliveries_of_many_merchants_are_applied_by_one_job_per_shard_in_store_time_order(
    stores: Stores, monkeypatch
):
    monkeypatch.setattr(inbound_drain, "BATCH", 7)  # each merchant's three deliveries span several batches
    stores.push_newest_first()
    queue = Queue(EVENTS, connection=stores.rt.redis)
    shards = {scheduling.shard(mid) for mid in stores.ids}
    assert queue.count == len(shards) <= scheduling.SHARDS < MERCHANTS  # not one job per merchant

    drain(stores.rt)

    for mid, statuses in stores.statuses().items():
        assert statuses == [("processed", "stock updated")] * 3, mid  # oldest first: none stale
        assert stores.stock(mid) == mid * 10 + 2
    results = [r for r in stores.drain_results() if r.get("batches")]
    assert len(results) == len(shards)
    assert sum(r["processed"] for r in results) == 3 * MERCHANTS
    # Batches hold several merchants: far fewer than one per merchant and delivery.
    assert sum(r["batches"] for r in results) <= 3 * MERCHANTS // 7 + 2 * len(shards)


def test_a_poisoned_delivery_among_many_merchants_fails_alone(stores: Stores, monkeypatch):
    from connector.stock import store_events

    real_apply = store_events.apply
    victim = stores.ids[5]

    def fragile(session, merchant, deliveries, **options):
        if merchant.id == victim and any(e.external_id == "SKU-000003" for _, evs in deliveries for e in evs):
            raise RuntimeError("boom")
        return real_apply(session, merchant, deliveries, **options)

    monkeypatch.setattr(store_events, "apply", fragile)
    for mid in stores.ids:
        stores.push(mid, [("SKU-000002", 1)], T0)
        stores.push(mid, [("SKU-000003", 2)], T0 + timedelta(minutes=1))
        stores.push(mid, [("SKU-000004", 3)], T0 + timedelta(minutes=2))

    drain(stores.rt)

    statuses = stores.statuses()
    assert statuses[victim] == [
        ("processed", "stock updated"),
        ("failed", "RuntimeError: boom"),
        ("processed", "stock updated"),
    ]
    for mid in stores.ids:
        if mid != victim:
            assert statuses[mid] == [("processed", "stock updated")] * 3, mid
            assert stores.stock(mid, "SKU-000003") == 2
    assert stores.stock(victim, "SKU-000003") is None and stores.stock(victim, "SKU-000004") == 3
    assert len([r for r in stores.drain_results() if r.get("batches")]) <= scheduling.SHARDS


class Killed(BaseException):
    """The worker's process dies (SIGKILL) in the middle of a batch."""


def test_a_drain_killed_mid_batch_leaves_the_batch_pending_and_it_is_applied_once_later(
    stores: Stores, monkeypatch
):
    from connector.stock import store_events

    real_apply = store_events.apply
    calls = []

    def dies_at_the_third_merchant(session, merchant, deliveries, **options):
        calls.append(merchant.id)
        if len(calls) == 3:
            raise Killed
        return real_apply(session, merchant, deliveries, **options)

    first = stores.ids[0]
    shard_mates = [mid for mid in stores.ids if scheduling.shard(mid) == scheduling.shard(first)]
    for mid in shard_mates:
        stores.push(mid, [("SKU-000001", mid)], T0)
    monkeypatch.setattr(store_events, "apply", dies_at_the_third_merchant)
    with pytest.raises(Killed):
        inbound_drain.drain(first)  # the job, as the worker runs it
    assert len(calls) == 3  # two merchants applied in the batch's transaction, which never committed
    assert {s for mid in shard_mates for s, _ in stores.statuses()[mid]} == {"pending"}
    assert all(stores.stock(mid) is None for mid in shard_mates)

    monkeypatch.setattr(store_events, "apply", real_apply)
    Queue(EVENTS, connection=stores.rt.redis).empty()  # the job died with its worker
    stores.rt.redis.delete(scheduling.flag_key(first))  # and its flag expired
    assert inbound_drain.sweep_inbound(stores.rt, grace=timedelta(0)) == 1
    drain(stores.rt)
    for mid in shard_mates:
        assert stores.statuses()[mid] == [("processed", "stock updated")]
        assert stores.stock(mid) == mid
        assert event_counts(stores.rt, mid)["inventory.updated"] == 1  # applied once


def test_a_web_process_reads_the_merchants_of_a_flood_by_pages_and_still_knows_a_new_one(
    stores: Stores, tmp_path: Path
):
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM merchants" in statement:
            reads.append(statement)

    engine = stores.rt.db.autocommit_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for mid in stores.ids:
            stores.push(mid, [("SKU-000001", 1)], T0)
        pages = {mid // receiver.PAGE for mid in stores.ids}
        assert len(reads) == len(pages) < MERCHANTS  # not one read per merchant
        ((newcomer, secret, _),) = make_merchants(stores.rt, tmp_path, 1, "late")  # after its page was read
        stores.pushers[newcomer] = FeedPusher(f"/webhooks/feed/{newcomer}", secret)
        stores.push(newcomer, [("SKU-000001", 7)], T0)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    drain(stores.rt)
    assert stores.stock(newcomer) == 7
