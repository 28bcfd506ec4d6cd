"""Test helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest
import requests
from flask import Flask
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from config.settings import Settings
from connector.app import create_app
from connector.catalog import syncs
from connector.infra import runtime
from connector.infra.db import Database
from connector.infra.models import EventPayload, InboundEvent, InventoryLevel, SyncRun, Variant
from connector.live import sessions
from connector.merchants import clients
from connector.merchants.records import create_merchant
from connector.supervisor import CommandForks, Forked
from connector.worker import build_worker
from webhooks.inbound import receiver

# For tests of process supervision (signals, start-up, logs, slow clients), which the storage backend does not
# change: they run on SQLite only, where every other test runs on both backends.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# For end-to-end tests of real processes (each costs tens of seconds): one backend each. PostgreSQL, production's,
# where the test is about workers of several processes contending for the same rows; SQLite otherwise. What
# differs between the backends below the processes (locking, conflicts, SQL) is tested in-process on both.
# Where TEST_DATABASE_URL is not set, PostgreSQL's share runs on SQLite.
ON_POSTGRESQL = pytest.mark.parametrize(
    "database_url", ["postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"], indirect=True
)


class ApiClient(NamedTuple):
    """A platform client of the Platform API: its id and the Authorization header of its key."""

    id: int
    headers: dict[str, str]


def make_client(rt: runtime.Runtime, name: str) -> ApiClient:
    """A new platform client named `name` with a key (unpacks as `client_id, headers`)."""
    with rt.db.session() as session:
        client, key = clients.create_client(session, name)
        return ApiClient(client.id, {"Authorization": f"Bearer {key}"})


def build_app(rt: runtime.Runtime) -> Flask:
    """The web app over `rt`, as a freshly started web process has it (no cached pins or merchants)."""
    sessions.pin_cache.clear()
    receiver.merchants.clear()
    return create_app(rt.settings, rt)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """`response` is an RFC 9457 problem document of `status` with the stable `code`; its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"].endswith("/" + code), body
    return body


def add_feed_merchant(rt: runtime.Runtime, feed: Path, name: str = "shop", buffer: int = 0) -> int:
    with rt.db.session() as session:
        merchant = create_merchant(
            session, rt.secrets, kind="feed", name=name, config={"url": str(feed)}, inventory_buffer=buffer
        )
        return merchant.id


def drain(rt: runtime.Runtime) -> None:
    """Run a real RQ worker until the queues are empty."""
    build_worker(rt).work(burst=True, with_scheduler=False)


def sync_now(rt: runtime.Runtime, merchant_id: int, *, dry_run: bool = False) -> SyncRun:
    """Request a sync, run the worker, and check the job ended as the run did."""
    run = syncs.request_sync(rt, merchant_id, dry_run=dry_run)
    drain(rt)
    final = syncs.get_run(rt, run.id)
    assert final.job_id is not None
    status = Job.fetch(final.job_id, connection=rt.redis).get_status()
    expected = JobStatus.FINISHED if final.status == "succeeded" else JobStatus.FAILED
    assert status == expected, f"run {final.status} but its job is {status}"
    return final


def event_counts(rt: runtime.Runtime, merchant_id: int) -> dict[str, int]:
    with rt.db.session() as session:
        rows = session.execute(
            select(EventPayload.type, func.count())
            .where(EventPayload.merchant_id == merchant_id)
            .group_by(EventPayload.type)
        )
        return {t: n for t, n in rows}


def rewrite_feed(path: Path, change: Callable[[int, dict[str, str]], dict[str, str] | None]) -> None:
    """Rewrite a CSV feed row by row; `change(index, row)` returns the new row, or None to drop it."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in (change(i, dict(row)) for i, row in enumerate(reader)) if r is not None]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(settings: Settings, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of `storelink` processes started by a test: its database, Redis and key."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEYS": settings.secret_keys.get_secret_value(),
        "LOG_LEVEL": "INFO",
        "FEED_ALLOW_FILES": "true",
        "FEED_ALLOW_PRIVATE_URLS": "true",
        **overrides,
    }


class Processes:
    """`storelink` processes started by a test, each logging to a file in `log_dir`, all stopped at the end.
    They are forked from a fork server that imported their modules once (as `storelink up` forks its workers),
    so a test starting and killing a dozen workers does not pay a dozen imports."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.started: list[Forked] = []
        self._forks = CommandForks(env)

    def start(self, name: str, *args: str) -> Forked:
        proc = self._forks.start(list(args), log=self.log_dir / f"{name}.log")
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def push_through_killed_workers(
    rt: runtime.Runtime, procs: Processes, ids: list[int], *, workers: int, kills: int, within: float
) -> int:
    """Start `workers` workers (orders and events queues) and the scheduler, queue the push of every order in
    `ids`, and SIGKILL one worker (restarting it) each time another share of the orders is confirmed, `kills`
    times, until all are confirmed or `within` seconds pass. Returns the kills made."""
    from connector.bench.shopify import order_counts
    from connector.orders import push

    def confirmed() -> int:
        return order_counts(rt, ids).get("confirmed", 0)

    running = [procs.start(f"worker-{n}", "worker", "--queues", "orders,events") for n in range(workers)]
    procs.start("scheduler", "scheduler")
    for order_id in ids:
        push.enqueue(rt, order_id)
    deadline = time.monotonic() + within
    made = 0
    while (done := confirmed()) < len(ids):
        assert time.monotonic() < deadline, f"not all confirmed: {order_counts(rt, ids)}"
        if made < kills and done >= (made + 1) * len(ids) // (kills + 2):
            slot = made % len(running)
            running[slot].send_signal(signal.SIGKILL)
            running[slot].wait()
            running[slot] = procs.start(f"worker-{slot}", "worker", "--queues", "orders,events")
            made += 1
        time.sleep(0.1)
    return made


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Up:
    """A running `storelink up` and the environment to talk to it with; `overrides` are added to its env."""

    def __init__(self, settings: Settings, tmp_path: Path, *, workers: int = 2, **overrides: str):
        self.port = free_port()
        self.processes = 3 + workers  # web, front, the workers and the scheduler
        self.env = process_env(
            settings,
            tmp_path,
            SWEEP_INTERVAL_SECONDS="1",
            STALE_AFTER_SECONDS="3",
            SYNC_BATCH_SIZE="500",
            **overrides,
        )
        self.log = (tmp_path / "up.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connector.cli",
                "up",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = Database(settings.database_url)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for the web app's readiness and every process of `up` to have started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "storelink up exited"
            try:
                ready = requests.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                ready = False
            if ready and len(self.supervised()) == self.processes:
                return
            time.sleep(0.2)
        raise AssertionError(f"storelink up never became ready with its {self.processes} processes")

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
        """The job workers: forked from up's fork server, titled `storelink worker`, then by RQ."""
        return [
            p for p in self.forked() if " ".join(p.cmdline()).startswith(("storelink worker", "rq:worker:"))
        ]

    def forked(self) -> list[psutil.Process]:
        """The processes `storelink up` forked from its fork server: web (gunicorn's master, titled `gunicorn:
        master [...]` once it runs), front, the workers and the scheduler."""
        for child in psutil.Process(self.proc.pid).children():
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                return child.children()
        return []

    def supervised(self) -> set[int]:
        """The pids of the processes `storelink up` runs (all forked from its fork server)."""
        return {forked.pid for forked in self.forked()}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.db.dispose()
            self.log.close()


class ServedApp:
    """Storelink's web app on a real threaded server on loopback, as a store reaches it."""

    def __init__(self, rt: runtime.Runtime) -> None:
        import threading

        from werkzeug.serving import make_server

        from connector.app import create_app
        from webhooks.inbound import receiver

        receiver.merchants.clear()
        self._server = make_server("127.0.0.1", 0, create_app(rt.settings, rt), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def shopify_stock_and_acknowledged(server: Any) -> tuple[dict[str, int], set[str]]:
    """The Shopify emulator's (`connector.sandbox.shopify.Server`) stock at its primary location by inventory
    item, and the ids of the webhooks it sent that were acknowledged with a 2xx."""
    store = server.store
    location = store.primary_location.legacy_resource_id
    stock = {
        f"gid://shopify/InventoryItem/{number}": item.levels[location].available
        for number, item in store.inventory_items.items()
    }
    acknowledged = {
        a.webhook_id for a in server.emulator.webhooks.attempts() if a.status and 200 <= a.status < 300
    }
    return stock, acknowledged


def assert_store_webhooks_handled(
    rt: runtime.Runtime, acknowledged: set[str], store_stock: dict[str, int]
) -> None:
    """Every acknowledged store webhook was stored once and applied, or skipped because a later read of the
    store's stock (a reconciliation) already held a newer figure; either way the stored stock is the store's."""
    with rt.db.session() as session:
        inbound = session.execute(
            select(InboundEvent.dedupe_key, InboundEvent.status, InboundEvent.error)
        ).all()
        stored_stock = dict(
            session.execute(
                select(Variant.inventory_item_ref, InventoryLevel.available).join(
                    InventoryLevel, InventoryLevel.variant_id == Variant.id
                )
            ).all()
        )
    keys = [key for key, _, _ in inbound]
    assert acknowledged and set(keys) >= acknowledged and len(keys) == len(set(keys))
    assert {status for _, status, _ in inbound} <= {"processed", "skipped"}
    assert "processed" in {status for _, status, _ in inbound}
    assert all((note or "").startswith("stale: ") for _, status, note in inbound if status == "skipped")
    assert stored_stock == store_stock


def platform_client(rt: runtime.Runtime) -> tuple[int, dict[str, str]]:
    """A new platform API client: its id and the Authorization header of its key."""
    with rt.db.session() as session:
        client, key = clients.create_client(session, "platform")
        return client.id, {"Authorization": f"Bearer {key}"}


def shopify_merchant(rt: runtime.Runtime, server: Any, client_id: int) -> int:
    """A merchant `shop` connected to the Shopify emulator `server` (`connector.sandbox.shopify.Server`) with
    an offline token, selling at its primary location, for the platform client `client_id`; its id."""
    store, app_client = server.store, server.emulator.client
    with rt.db.session() as session:
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="shopify",
            name="shop",
            config={
                "shop": store.shop.myshopify_domain,
                "base_url": server.url,
                "location": str(store.primary_location.legacy_resource_id),
            },
            credentials={
                "access_token": "shpat_sandbox",
                "client_id": app_client.client_id,
                "client_secret": app_client.client_secret,
            },
            platform_client_id=client_id,
        )
        return merchant.id


def variant_prices(rt: runtime.Runtime, merchant_id: int) -> list[tuple[int, int]]:
    """The merchant's variants as (id, price in minor units)."""
    with rt.db.session() as session:
        rows = session.execute(
            select(Variant.id, Variant.price_minor).where(Variant.merchant_id == merchant_id)
        ).all()
        return [(variant_id, price) for variant_id, price in rows]
