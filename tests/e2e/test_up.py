"""End to end: `storelink up` in a subprocess, driven through the CLI and HTTP like an operator would."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra import outbox
from connector.infra.db import make_engine
from connector.infra.models import EventPayload, Product, SyncRun, Variant
from connector.sandbox.feeds import write_feed
from tests.helpers import ON_POSTGRESQL, SQLITE_ONLY, Up

pytestmark = pytest.mark.slow

ROWS = 5_000
KILL_ROWS = 20_000  # a first sync long enough to be caught mid-run on a busy machine


@pytest.fixture
def up(settings: Settings, redis, tmp_path: Path) -> Iterator[Up]:
    server = Up(settings, tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _latest_run(up: Up) -> SyncRun:
    with up.db.session() as s:
        run = s.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
        assert run is not None
        return run


def _count(up: Up, model: type) -> int:
    with up.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@SQLITE_ONLY
def test_feed_merchant_syncs_through_the_real_worker(up, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", ROWS, variants_per_product=4)

    added = up.cli("merchants", "add", "feed", "--name", "shop", "--url", str(feed))
    assert "full sync queued" in added.stdout
    first = up.wait_run(_latest_run(up).id)

    assert first.status == "succeeded", first.error
    assert (first.rows_read, first.created, first.failed_rows) == (ROWS, ROWS, 0)
    assert _count(up, Variant) == ROWS
    assert _count(up, Product) == ROWS // 4
    metrics = requests.get(f"{up.url}/metrics", timeout=5).text
    assert f'storelink_sync_rows_total{{outcome="created"}} {float(ROWS)}' in metrics
    assert 'storelink_sync_runs{status="succeeded"} 1.0' in metrics
    events_before = _count(up, EventPayload)
    assert events_before == ROWS // 4  # one product.updated (created) per product

    second = up.cli("resync", "shop")  # waits for the worker, prints the summary
    assert "succeeded" in second.stdout
    run = _latest_run(up)
    assert (run.status, run.unchanged, run.events_emitted) == ("succeeded", ROWS, 0)
    assert _count(up, EventPayload) == events_before

    listing = json.loads(up.cli("merchants", "list", "--json").stdout)
    assert listing[0]["name"] == "shop" and listing[0]["last_sync"] == "succeeded"


@SQLITE_ONLY
def test_flushing_redis_mid_sync_loses_nothing(up, redis, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", ROWS, variants_per_product=4)
    up.cli("merchants", "add", "feed", "--name", "shop", "--url", str(feed), "--no-sync")
    queued = up.cli("resync", "shop", "--no-wait")
    run_id = int(queued.stdout.split("run ")[1].split()[0])

    deadline = time.monotonic() + 60
    while up.run(run_id).rows_read == 0:
        assert time.monotonic() < deadline, "the sync never started"
        time.sleep(0.05)
    redis.flushdb()  # every queue, job and registry is gone mid-sync

    final = up.wait_run(run_id)
    assert final.status == "succeeded", final.error
    assert _count(up, Variant) == ROWS


@ON_POSTGRESQL
def test_a_worker_killed_mid_sync_is_replaced_and_the_run_completes(up, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", KILL_ROWS, variants_per_product=4)
    up.cli("merchants", "add", "feed", "--name", "shop", "--url", str(feed), "--no-sync")
    for _ in range(3):  # a run that ended before the workers died proves nothing: resync and kill again
        run_id = int(up.cli("resync", "shop", "--no-wait").stdout.split("run ")[1].split()[0])
        deadline = time.monotonic() + 60
        while up.run(run_id).rows_read == 0:
            assert time.monotonic() < deadline, "the sync never started"
            time.sleep(0.005)
        busy = [w for w in up.workers() if w.status() != psutil.STATUS_ZOMBIE]
        for worker in busy:  # held still first, so the run cannot end between this look and the kill
            worker.send_signal(signal.SIGSTOP)
        killed = _status(up, run_id) == "running"
        for worker in busy:  # no survivor finishes it by luck: every worker dies
            worker.send_signal(signal.SIGKILL if killed else signal.SIGCONT)
        if killed:
            psutil.wait_procs(busy, timeout=10)
            break
    else:
        raise AssertionError("each of three runs ended before its workers could be stopped")

    final = up.wait_run(run_id)
    assert final.status == "succeeded", final.error
    assert final.attempt >= 2  # taken over after the stale heartbeat
    assert _count(up, Variant) == KILL_ROWS
    with up.db.session() as s:
        types = dict(s.execute(select(EventPayload.type, func.count()).group_by(EventPayload.type)).all())
    # Batches written before the kill were not written again: one event per product, never two.
    assert types == {outbox.PRODUCT_UPDATED: KILL_ROWS // 4}


def _status(up: Up, run_id: int) -> str | None:
    """The run's status read without a transaction (a held worker may keep SQLite's write lock)."""
    engine = make_engine(up.env["DATABASE_URL"], autocommit=True)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(SyncRun.status).where(SyncRun.id == run_id))
    finally:
        engine.dispose()
