"""Store webhooks through HTTP: verified, stored once, drained in batches by the real worker, newest wins."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import func, select

from connector.app import create_app
from connector.infra import runtime
from connector.infra.models import InboundEvent, InventoryLevel, Product, SyncRun, Variant
from connector.infra.queue import EVENTS
from connector.merchants.records import create_merchant
from connector.sandbox.feed_push import FeedPusher, new_secret
from connector.sandbox.feeds import write_feed
from tests.helpers import drain, event_counts, sync_now
from webhooks.inbound import drain as inbound_drain
from webhooks.inbound import receiver, scheduling

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
"""Store time of the deliveries: later than the catalog pass each test starts with, whose figures they change."""


class Store:
    """A synced feed merchant with a webhook secret, and a pusher posting through the Flask test client."""

    def __init__(self, rt: runtime.Runtime, tmp_path: Path, rows: int = 12) -> None:
        self.rt = rt
        self.secret = new_secret()
        self.feed = write_feed(tmp_path / "feed.csv", rows, variants_per_product=3)
        with rt.db.session() as session:
            merchant = create_merchant(
                session,
                rt.secrets,
                kind="feed",
                name="pusher",
                config={"url": str(self.feed)},
                credentials={"webhook_secret": self.secret},
            )
            self.merchant_id = merchant.id
        sync_now(rt, self.merchant_id)
        receiver.merchants.clear()
        self.client = create_app(rt.settings, rt).test_client()
        self.path = f"/webhooks/feed/{self.merchant_id}"
        self.pusher = FeedPusher(self.path, self.secret)

    def post(self, delivery, *, path: str | None = None, headers: dict[str, str] | None = None, body=None):
        return self.client.post(
            path or self.path,
            data=delivery.body if body is None else body,
            headers=headers or delivery.headers,
        )

    def push(self, items, **kwargs):
        return self.post(self.pusher.inventory(items, **kwargs))

    def stock(self, ref: str) -> int | None:
        with self.rt.db.session() as session:
            return session.scalar(
                select(InventoryLevel.available)
                .join(Variant, Variant.id == InventoryLevel.variant_id)
                .where(Variant.merchant_id == self.merchant_id, Variant.external_id == ref)
            )

    def inbound(self) -> list[tuple[str, str, str | None]]:
        with self.rt.db.session() as session:
            return [
                (e.dedupe_key, e.status, e.error)
                for e in session.scalars(select(InboundEvent).order_by(InboundEvent.id))
            ]


@pytest.fixture
def store(rt, tmp_path: Path) -> Store:
    return Store(rt, tmp_path)


def test_verified_deliveries_are_stored_once_and_applied_by_the_worker(store: Store):
    first = store.push([("SKU-000001", 40), ("SKU-000002", 777)], at=T0)
    assert first.status_code == 200 and first.json["status"] == "accepted"
    assert store.inbound()[0][1] == "pending"  # acknowledged before any processing
    before = event_counts(store.rt, store.merchant_id).get("inventory.updated", 0)

    drain(store.rt)

    assert store.stock("SKU-000001") == 40 and store.stock("SKU-000002") == 777
    assert [(status, note) for _, status, note in store.inbound()] == [("processed", "stock updated")]
    published = event_counts(store.rt, store.merchant_id)["inventory.updated"] - before
    assert published == 2
    with store.rt.db.session() as session:
        level = session.scalars(
            select(InventoryLevel)
            .join(Variant, Variant.id == InventoryLevel.variant_id)
            .where(Variant.external_id == "SKU-000001")
        ).one()
        assert level.source_updated_at == T0 and level.version == 2


def test_duplicates_are_acknowledged_and_harmless(store: Store):
    delivery = store.pusher.inventory([("SKU-000003", 7)], at=T0)
    assert store.post(delivery).json["status"] == "accepted"
    again = store.post(delivery)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    drain(store.rt)
    # The same change under a new delivery id (a store resending the event) changes nothing either.
    assert store.push([("SKU-000003", 7)], at=T0).json["status"] == "accepted"
    drain(store.rt)
    assert store.stock("SKU-000003") == 7
    statuses = [(status, note) for _, status, note in store.inbound()]
    assert statuses == [("processed", "stock updated"), ("skipped", "stale: SKU-000003 has newer stock")]


def test_out_of_order_deliveries_never_overwrite_newer_stock(store: Store):
    newer = store.pusher.inventory([("SKU-000004", 5)], at=T0 + timedelta(minutes=5))
    older = store.pusher.inventory([("SKU-000004", 99)], at=T0)
    # Both arrive before the drain: applied in store-time order, so the newer one wins.
    store.post(newer)
    store.post(older)
    drain(store.rt)
    assert store.stock("SKU-000004") == 5
    # A late straggler, in a later batch, is skipped as stale.
    store.push([("SKU-000004", 123)], at=T0 + timedelta(minutes=1))
    drain(store.rt)
    assert store.stock("SKU-000004") == 5
    assert [status for _, status, _ in store.inbound()] == ["processed", "processed", "skipped"]


def test_bad_signatures_are_401_and_store_nothing(store: Store):
    good = store.pusher.inventory([("SKU-000001", 1)])
    other = FeedPusher(store.path, new_secret()).inventory([("SKU-000001", 1)])
    tampered = good.body.replace(b'"quantity": 1', b'"quantity": 9')
    cases = [
        store.post(other),  # signed with another secret
        store.post(good, body=tampered),  # body changed after signing
        store.post(good, headers={"content-type": "application/json"}),  # no signature headers
        store.post(good, headers={**good.headers, "webhook-signature": "v1,not-base64!"}),
        store.post(good, headers={**good.headers, "webhook-timestamp": "1"}),  # replayed from long ago
    ]
    for response in cases:
        assert response.status_code == 401, response.data
        assert response.mimetype == "application/problem+json"
    assert cases[0].json["code"] == "bad_signature"
    assert store.inbound() == []


def test_malformed_and_oversized_requests_are_4xx_and_store_nothing(store: Store):
    pusher = store.pusher
    bad_json = pusher.delivery("inventory.updated", {})
    bad_json = type(bad_json)(bad_json.webhook_id, bad_json.headers, b"{not json")
    resigned = FeedPusher(store.path, store.secret)
    body = b"{not json"
    headers = dict(bad_json.headers)
    headers["webhook-signature"] = resigned._signer.sign(
        bad_json.webhook_id, datetime.now(UTC), body.decode()
    )
    headers["webhook-timestamp"] = str(int(datetime.now(UTC).timestamp()))
    response = store.post(bad_json, headers=headers, body=body)
    assert response.status_code == 400 and response.json["code"] == "bad_json"

    unknown_topic = store.post(pusher.delivery("orders.paid", {"id": "1"}))
    assert unknown_topic.status_code == 400 and unknown_topic.json["code"] == "unknown_topic"
    no_items = store.post(pusher.delivery("inventory.updated", {"items": []}))
    assert no_items.status_code == 400 and "data.items" in no_items.json["detail"]
    bad_quantity = store.post(pusher.inventory([("SKU-000001", "many")]))  # type: ignore[list-item]
    assert bad_quantity.status_code == 400 and "quantity" in bad_quantity.json["detail"]

    limit = store.rt.settings.max_request_bytes
    huge = pusher.inventory([("SKU-000001", 1)])
    too_big = store.post(huge, body=huge.body + b" " * limit)
    assert too_big.status_code == 413

    assert store.client.post("/webhooks/nowhere", data=b"{}").status_code == 404
    assert store.client.post("/webhooks/feed", data=b"{}").json["code"] == "no_store"
    missing = store.post(pusher.inventory([("SKU-000001", 1)]), path="/webhooks/feed/999999")
    assert missing.status_code == 401 and missing.json["code"] == "unknown_store"
    assert store.inbound() == []


def test_a_burst_is_one_job_and_one_batch(store: Store):
    queue = Queue(EVENTS, connection=store.rt.redis)
    queued_before = queue.count
    for n in range(150):
        assert store.push([(f"SKU-{n % 12 + 1:06d}", n)], at=T0 + timedelta(seconds=n)).status_code == 200
    assert queue.count - queued_before == 1  # one drain job woken for the whole burst
    counts = inbound_drain.drain(store.merchant_id)
    assert counts == {"processed": 150, "skipped": 0, "failed": 0, "batches": 1}
    # The last change per variant wins; one inventory.updated per changed variant and batch.
    assert store.stock("SKU-000012") == 143 and store.stock("SKU-000001") == 144


def test_product_deliveries_delete_and_resync(store: Store):
    store.post(store.pusher.delivery("product.deleted", {"id": "P-000002"}, at=T0))
    store.post(store.pusher.delivery("product.updated", {"id": "P-000001"}, at=T0))
    inbound_drain.drain(store.merchant_id)
    with store.rt.db.session() as session:
        status = session.scalar(select(Product.status).where(Product.external_id == "P-000002"))
        runs = session.scalar(
            select(func.count()).select_from(SyncRun).where(SyncRun.merchant_id == store.merchant_id)
        )
    assert status == "deleted"
    assert runs == 2  # the first sync, and the one the product.updated delivery asked for
    assert event_counts(store.rt, store.merchant_id)["product.deleted"] == 1
    drain(store.rt)  # the queued sync reads the feed again: the deleted product is still in it
    with store.rt.db.session() as session:
        assert session.scalar(select(Product.status).where(Product.external_id == "P-000002")) == "active"


def test_a_poisoned_delivery_fails_alone_and_support_replays(store: Store, cli, monkeypatch):
    from connector.stock import store_events

    real_apply = store_events.apply

    def fragile(session, merchant, deliveries, **options):
        if any(ev.external_id == "SKU-000009" for _, evs in deliveries for ev in evs):
            raise RuntimeError("boom")
        return real_apply(session, merchant, deliveries, **options)

    monkeypatch.setattr(store_events, "apply", fragile)
    store.push([("SKU-000008", 3)], at=T0)
    store.push([("SKU-000009", 4)], at=T0)
    store.push([("SKU-000010", 5)], at=T0)
    assert inbound_drain.drain(store.merchant_id) == {
        "processed": 2,
        "skipped": 0,
        "failed": 1,
        "batches": 1,
    }
    assert store.stock("SKU-000008") == 3 and store.stock("SKU-000010") == 5
    listed = json.loads(cli("inbound", "list", str(store.merchant_id), "--status", "failed", "--json"))
    assert [row["note"] for row in listed] == ["RuntimeError: boom"]

    monkeypatch.setattr(store_events, "apply", real_apply)  # the fix ships; support replays the failure
    assert "replayed 1 inbound delivery" in cli("inbound", "replay", str(store.merchant_id))
    drain(store.rt)
    assert store.stock("SKU-000009") == 4
    assert [status for _, status, _ in store.inbound()] == ["processed", "processed", "processed"]

    # Replaying everything already applied is harmless: every change is skipped as stale.
    out = cli("inbound", "replay", str(store.merchant_id), "--status", "processed", "--since", "2000-01-01")
    assert "replayed 3 inbound deliveries" in out
    drain(store.rt)
    assert {status for _, status, _ in store.inbound()} == {"skipped"}
    assert store.stock("SKU-000009") == 4
    assert "must be later" in cli(
        "inbound", "replay", "1", "--since", "2026-01-02", "--until", "2026-01-01", expect=2
    )
    assert "no merchant" in cli("inbound", "list", "nobody", expect=1)


def test_a_lost_drain_job_is_recovered_by_the_sweeper(store: Store):
    store.push([("SKU-000005", 11)], at=T0)
    Queue(EVENTS, connection=store.rt.redis).empty()  # Redis lost the job...
    store.rt.redis.delete(scheduling.flag_key(store.merchant_id))  # ...and the wake-up flag
    drain(store.rt)
    assert store.stock("SKU-000005") != 11
    assert inbound_drain.sweep_inbound(store.rt, grace=timedelta(0)) == 1
    drain(store.rt)
    assert store.stock("SKU-000005") == 11
    assert inbound_drain.sweep_inbound(store.rt, grace=timedelta(0)) == 0


def test_unknown_variants_wait_for_the_catalog_and_replay_applies_them(store: Store, cli):
    store.push([("SKU-000099", 3)], at=T0)
    drain(store.rt)
    assert store.inbound()[0][1:] == ("skipped", "unknown variant SKU-000099")
    write_feed(store.feed, 99, variants_per_product=3)
    sync_now(store.rt, store.merchant_id)
    cli("inbound", "replay", str(store.merchant_id), "--status", "skipped")
    drain(store.rt)
    assert store.stock("SKU-000099") == 3


def test_deliveries_stored_while_a_drain_works_are_its_own_and_queue_no_second_job(store: Store, monkeypatch):
    store.push([("SKU-000006", 1)], at=T0)
    queue = Queue(EVENTS, connection=store.rt.redis)
    assert queue.count == 1
    batches = []
    original = inbound_drain.drain_batch

    def drain_batch_with_a_delivery_arriving(*args, **kwargs):
        taken = original(*args, **kwargs)
        batches.append(taken)
        if len(batches) == 1:  # a delivery arrives while the job works: the flag still stands
            assert store.push([("SKU-000006", 2)], at=T0 + timedelta(minutes=1)).json["status"] == "accepted"
            assert queue.count == 0
        return taken

    monkeypatch.setattr(inbound_drain, "drain_batch", drain_batch_with_a_delivery_arriving)
    drain(store.rt)
    assert store.stock("SKU-000006") == 2
    assert batches == [1, 1]  # its read after letting go of the flag (the second delivery) is its last
    assert not store.rt.redis.exists(scheduling.flag_key(store.merchant_id))
    store.push([("SKU-000006", 3)], at=T0 + timedelta(minutes=2))
    assert queue.count == 1  # the next delivery wakes a new job


def test_a_delivery_stored_after_the_drain_let_go_of_its_flag_wakes_the_next_job(store: Store, monkeypatch):
    store.push([("SKU-000006", 1)], at=T0)
    queue = Queue(EVENTS, connection=store.rt.redis)
    batches = []
    original = inbound_drain.drain_batch

    def drain_batch_with_a_late_delivery(*args, **kwargs):
        taken = original(*args, **kwargs)
        batches.append(taken)
        if len(batches) == 2:  # the drain's last read is done: the flag is down, so this one queues a job
            assert store.push([("SKU-000006", 2)], at=T0 + timedelta(minutes=1)).json["status"] == "accepted"
            assert queue.count == 1
        return taken

    monkeypatch.setattr(inbound_drain, "drain_batch", drain_batch_with_a_late_delivery)
    drain(store.rt)  # the burst worker runs the first job, then the one the late delivery queued
    assert batches == [1, 0, 1, 0]
    assert store.stock("SKU-000006") == 2
    assert queue.count == 0


def test_intake_survives_the_database_dropping_its_kept_connection(store: Store):
    """The intake keeps one connection per thread; one the server closed is replaced and the insert retried."""
    db = store.rt.db
    assert store.push([("SKU-000007", 1)], at=T0).json["status"] == "accepted"
    held = db._held.conn
    assert held is not None
    if db.engine.dialect.name == "postgresql":
        cursor = held.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
        cursor.close()
        with db.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
    else:
        held.dbapi_connection.close()  # as good as gone: the next use raises
    assert store.push([("SKU-000007", 2)], at=T0 + timedelta(minutes=1)).json["status"] == "accepted"
    assert db._held.conn is not held
    assert [status for _, status, _ in store.inbound()] == ["pending", "pending"]


def test_a_burst_asks_redis_about_a_merchant_once_per_quiet_period(rt, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(scheduling.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(scheduling, "_seen", {})
    redis = rt.redis
    queue = Queue(EVENTS, connection=redis)
    assert scheduling.wake(redis, 4242) is True  # sets the flag and queues the drain job
    redis.delete(scheduling.flag_key(4242))  # as a drain that let go of it would
    clock[0] += scheduling.QUIET / 2
    assert scheduling.wake(redis, 4242) is False
    assert not redis.exists(
        scheduling.flag_key(4242)
    )  # not asked: the drain's last read, SETTLE later, sees it
    assert scheduling.SETTLE > scheduling.QUIET
    clock[0] += scheduling.QUIET
    assert scheduling.wake(redis, 4242) is True  # past the quiet period: asked again, and woken
    assert [j.args[0] for j in queue.jobs] == [4242, 4242]
