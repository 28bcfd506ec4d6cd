"""Lost and failed work: Redis flushed, workers dead, permanent and retryable errors."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select

from connector.catalog import syncs
from connector.infra.models import Product, SyncRun
from connector.infra.queue import BULK
from connector.sandbox.feeds import write_feed
from tests.helpers import add_feed_merchant, drain


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    return write_feed(tmp_path / "feed.csv", 60, variants_per_product=3)


def test_flushed_redis_loses_no_sync(rt, redis, feed, monkeypatch):
    merchant_id = add_feed_merchant(rt, feed)
    run = syncs.request_sync(rt, merchant_id)
    assert rt.queues[BULK].count == 1
    redis.flushdb()  # the queued job is gone
    assert rt.queues[BULK].count == 0

    monkeypatch.setattr(syncs, "QUEUED_GRACE", timedelta(0))
    assert syncs.sweep(rt) == [run.id]
    assert syncs.sweep(rt) == []  # already live again: not enqueued twice
    drain(rt)

    assert syncs.get_run(rt, run.id).status == "succeeded"
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 20


def test_a_dead_workers_run_is_taken_over(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    run = syncs.request_sync(rt, merchant_id)
    token = syncs.claim(rt, run.id)  # a worker claimed it ...
    assert token is not None
    rt.redis.flushdb()  # ... and died with its job
    with rt.db.session() as s:
        s.get(SyncRun, run.id).heartbeat_at = datetime.now(UTC) - timedelta(seconds=30)

    assert syncs.sweep(rt) == [run.id]
    drain(rt)

    final = syncs.get_run(rt, run.id)
    assert final.status == "succeeded"
    assert final.attempt == 2
    assert final.lease_token != token


def test_a_finished_run_is_not_run_again(rt, feed):
    merchant_id = add_feed_merchant(rt, feed)
    run = syncs.request_sync(rt, merchant_id)
    drain(rt)
    job_id = syncs.get_run(rt, run.id).job_id
    # A duplicate delivery of the same job (e.g. re-enqueued by hand) is a no-op.
    rt.queues.enqueue(BULK, syncs.JOB_FUNC, run.id, job_id="sync-dup", dedupe=False)
    drain(rt)
    final = syncs.get_run(rt, run.id)
    assert final.attempt == 1 and final.status == "succeeded" and final.job_id == job_id


def test_permanent_error_fails_at_once_and_is_visible(rt, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", 3)
    merchant_id = add_feed_merchant(rt, feed)
    feed.unlink()

    run = syncs.request_sync(rt, merchant_id)
    drain(rt)

    final = syncs.get_run(rt, run.id)
    assert final.status == "failed"
    assert final.attempt == 1
    assert "not_found" in (final.error or "") or "No such file" in (final.error or "")
    failed = FailedJobRegistry(queue=rt.queues[BULK])
    assert failed.get_job_ids() == [run.job_id]
    assert ScheduledJobRegistry(queue=rt.queues[BULK]).count == 0


class _Throttled(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(429)
        self.send_header("Retry-After", "40")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def throttled_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Throttled)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.csv"
    server.shutdown()


def test_retryable_error_is_retried_no_sooner_than_retry_after(rt, throttled_url):
    from connector.merchants.records import create_merchant

    with rt.db.session() as s:
        merchant_id = create_merchant(s, rt.secrets, kind="feed", name="t", config={"url": throttled_url}).id
    run = syncs.request_sync(rt, merchant_id)
    before = time.time()
    drain(rt)

    final = syncs.get_run(rt, run.id)
    assert final.status == "queued"  # handed back for the retry
    assert "429" in (final.error or "") or "Retry" in (final.error or "")
    scheduled = ScheduledJobRegistry(queue=rt.queues[BULK])
    assert scheduled.get_job_ids() == [run.job_id]
    when = scheduled.get_scheduled_time(run.job_id).timestamp()
    assert when >= before + 40 - 1
    job = Job.fetch(run.job_id, connection=rt.redis)
    assert job.retries_left == 4
    # The sweeper leaves a run whose retry is scheduled alone.
    assert syncs.sweep(rt) == []


def test_refused_credentials_pause_an_installed_merchant_but_not_an_uninstalled_one(rt, feed, tmp_path):
    from sqlalchemy import update

    from connector.infra.models import Merchant

    installed = add_feed_merchant(rt, feed, name="installed")
    gone = add_feed_merchant(rt, write_feed(tmp_path / "other.csv", 3), name="gone")
    with rt.db.session() as session:
        session.execute(update(Merchant).where(Merchant.id == gone).values(status="uninstalled"))
    with rt.db.session() as session:
        for merchant_id in (installed, gone):
            syncs.pause_merchant(session, merchant_id, "store refused credentials")
    with rt.db.session() as session:
        states = dict(session.execute(select(Merchant.id, Merchant.status)).all())
    assert states == {installed: "paused", gone: "uninstalled"}
