"""End to end: `storelink up` in a subprocess, driven through the CLI and HTTP like an operator would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import func, select

from config.settings import Settings
from connector import events
from connector.db import Database
from connector.models import EventPayload, Product, SyncRun, Variant
from connector.sandbox.feeds import write_feed

pytestmark = pytest.mark.slow

ROWS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Up:
    """A running `storelink up` and the environment to talk to it with."""

    def __init__(self, settings: Settings, tmp_path: Path):
        self.port = _free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "DATA_DIR": str(tmp_path / "data"),
            "SECRET_KEYS": settings.secret_keys.get_secret_value(),
            "SWEEP_INTERVAL_SECONDS": "1",
            "STALE_AFTER_SECONDS": "3",
            "SYNC_BATCH_SIZE": "500",
            "LOG_LEVEL": "INFO",
        }
        self.log = (tmp_path / "up.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "up", "--port", str(self.port), "--workers", "2"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = Database(settings.database_url)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "storelink up exited"
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("storelink up never became ready")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "connector.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def run(self, run_id: int) -> SyncRun:
        with self.db.session() as s:
            run = s.get(SyncRun, run_id)
            assert run is not None
            return run

    def wait_run(self, run_id: int, timeout: float = 180) -> SyncRun:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run.status in ("succeeded", "failed"):
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not finish: {self.run(run_id).status}")

    def workers(self) -> list[psutil.Process]:
        return [
            p
            for p in psutil.Process(self.proc.pid).children(recursive=True)
            if "worker" in p.cmdline() and "connector.cli" in " ".join(p.cmdline())
        ]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.db.dispose()
            self.log.close()


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


def test_a_worker_killed_mid_sync_is_replaced_and_the_run_completes(up, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", ROWS, variants_per_product=4)
    up.cli("merchants", "add", "feed", "--name", "shop", "--url", str(feed), "--no-sync")
    run_id = int(up.cli("resync", "shop", "--no-wait").stdout.split("run ")[1].split()[0])

    deadline = time.monotonic() + 60
    while up.run(run_id).rows_read == 0:
        assert time.monotonic() < deadline, "the sync never started"
        time.sleep(0.05)
    busy = [w for w in up.workers() if w.status() != psutil.STATUS_ZOMBIE]
    for worker in busy:  # no survivor finishes it by luck: every worker dies
        worker.send_signal(signal.SIGKILL)

    final = up.wait_run(run_id)
    assert final.status == "succeeded", final.error
    assert final.attempt >= 2  # taken over after the stale heartbeat
    assert _count(up, Variant) == ROWS
    with up.db.session() as s:
        types = dict(s.execute(select(EventPayload.type, func.count()).group_by(EventPayload.type)).all())
    # Batches written before the kill were not written again: one event per product, never two.
    assert types == {events.PRODUCT_UPDATED: ROWS // 4}
