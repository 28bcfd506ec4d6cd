"""End to end, on hosts of the test's own (network namespaces on one bridge, `tests.netns`): a data host runs a
private Redis and a private PostgreSQL, a web host runs gunicorn, three worker hosts run `storelink worker`
(worker-a also the one scheduler). While 500 platform orders are pushed to the Shopify emulator and 5,000
store webhooks flow, worker-b's link is taken down for three leases while it is pushing an order, then
brought back. Every order is in the store once, every store webhook stored once and applied (or skipped as
older than a later read of the store's stock), every event reaches the platform once after its dedupe, no
sync run, order, webhook or delivery is left unfinished, worker-b's processes ride out the cut and work
again after it, and the order push worker-b held is taken over by another host within the lease.

The lease is LEASE seconds (5): STALE_AFTER_SECONDS (sync runs' heartbeats and, with HTTP_TIMEOUT_SECONDS at
2.5, the order push lease: two store timeouts) and WORKER_LOCK_SECONDS (the Redis lock and wake-up flag of
store-webhook drains); it also bounds how long PostgreSQL keeps the session of a host it cannot reach
(`connector.infra.db.dead_peer_args`), so the row locks of a transaction cut off midway are let go within it
and the takeover is not held up by them (`test_dead_peer.py`). An outbound attempt holds its delivery OUTBOUND_LEASE seconds (10:
WEBHOOK_TIMEOUT_SECONDS + WEBHOOK_LEASE_MARGIN_SECONDS; a dispatcher sends a round for half the margin). The
scheduler sweeps every second, so the takeover is due within LEASE + 1 s; the test allows twice the lease plus
a second for a loaded machine. The Shopify emulator answers each call after 0.1 s, as a store takes a moment,
so a push is in flight long enough to be cut, and sends its webhooks SENDERS at a time. The platform's
endpoint subscribes to the order events (SUBSCRIBED: 1,000 deliveries); the stock changes' inventory events
are published but reach no endpoint."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import requests
from cryptography.fernet import Fernet
from redis import Redis
from rq import Queue, Worker
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select

import config
from config.settings import Settings, load_settings
from connector.infra import runtime
from connector.infra.migrate import upgrade
from connector.infra.models import (
    Delivery,
    EventPayload,
    InboundEvent,
    Order,
    SyncRun,
)
from connector.infra.queue import QUEUE_NAMES
from connector.orders import push
from connector.sandbox.faults import ApiFault
from connector.sandbox.shopify import Server, serve
from connector.worker import wire_outbound
from tests import data_host, netns
from tests.helpers import (
    assert_store_webhooks_handled,
    platform_client,
    shopify_merchant,
    shopify_stock_and_acknowledged,
    sync_now,
    variant_prices,
    wait_for,
)
from webhooks.outbound.endpoints import create_endpoint

pytestmark = pytest.mark.slow

LEASE = 5
OUTBOUND_LEASE = 10  # an outbound attempt: WEBHOOK_TIMEOUT_SECONDS 2 + a margin of 8
SWEEP = 1
CUT = 3 * LEASE
TAKEOVER_BOUND = 2 * LEASE + SWEEP
ORDERS = 500
WEBHOOKS = 5000
WORKERS = ("worker-a", "worker-b", "worker-c")
CUT_HOST = "worker-b"
HOSTS = ("data", "web", "platform", *WORKERS)
SUBSCRIBED = "order.*"  # the platform's endpoint takes the order events
SENDERS = 4  # the store sends webhooks four at a time, as a store sends from many machines
PORT_WEB, PORT_PLATFORM = 8000, 9000
RECEIVER = """
import sys, threading
from connector.sandbox.platform import PlatformReceiver, Server
Server(PlatformReceiver(), int(sys.argv[2]), sys.argv[1])
threading.Event().wait()
"""


OPT_IN: Final = "STORELINK_TEST_MANY_HOSTS"


def _skip_reason() -> str | None:
    if os.environ.get(OPT_IN) != "1":
        return (
            f"runs with {OPT_IN}=1 only (`.ci/run` sets it): it keeps both cores busy for about a minute"
            " (nine service processes, 5,000 webhooks and 500 orders)"
        )
    return data_host.unavailable()


@dataclass
class Hosts:
    """The lab, its data services' URLs and the processes of each host."""

    lab: netns.Lab
    logs: Path
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    @property
    def web_url(self) -> str:
        return f"http://{self.lab.addresses['web']}:{PORT_WEB}"

    @property
    def platform_url(self) -> str:
        return f"http://{self.lab.addresses['platform']}:{PORT_PLATFORM}"


def _start_data(lab: netns.Lab, logs: Path) -> tuple[str, str]:
    """A private Redis and a private PostgreSQL on the data host."""
    return data_host.start_redis(lab, "data", logs), data_host.start_postgres(lab, "data", logs)


@pytest.fixture
def _quiet_servers() -> Iterator[None]:
    """The emulator in this process logs no line per request (thousands of them)."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    yield
    werkzeug.setLevel(level)


@pytest.fixture
def hosts(tmp_path: Path, _quiet_servers: None) -> Iterator[Hosts]:
    reason = _skip_reason()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    logs = tmp_path / "logs"
    logs.mkdir()
    with netns.Lab(HOSTS) as lab:
        redis_url, database_url = _start_data(lab, logs)
        settings = load_settings(
            database_url=database_url,
            redis_url=redis_url,
            data_dir=tmp_path / "data",
            secret_keys=Fernet.generate_key().decode(),
            log_json=False,
            stale_after_seconds=LEASE,
            webhook_allow_private_urls=True,
        )
        yield Hosts(lab, logs, settings)
        names = lab.made[:]
    left = [name for name in netns.namespaces() if name in names]
    assert left == [], f"namespaces left behind: {left}"


def _env(h: Hosts) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": h.settings.database_url,
        "REDIS_URL": h.settings.redis_url,
        "DATA_DIR": str(h.settings.data_dir),
        "SECRET_KEYS": h.settings.secret_keys.get_secret_value(),
        "LOG_LEVEL": "INFO",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "STALE_AFTER_SECONDS": str(LEASE),
        "HTTP_TIMEOUT_SECONDS": str(LEASE / 2),
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_LEASE_MARGIN_SECONDS": str(OUTBOUND_LEASE - 2),
        "WEBHOOK_SWEEP_GRACE_SECONDS": "1",
        "WORKER_LOCK_SECONDS": str(LEASE),
        "SWEEP_INTERVAL_SECONDS": str(SWEEP),
        "RECONCILE_INTERVAL_SECONDS": "10",
        "WEB_WORKERS": "3",
    }


def _start_receiver(h: Hosts) -> None:
    receiver = [sys.executable, "-c", RECEIVER, h.lab.addresses["platform"], str(PORT_PLATFORM)]
    h.procs["platform"] = [h.lab.start("platform", receiver, env=_env(h), log=h.logs / "platform.log")]
    wait_for(lambda: _received(h, limit=1) is not None, 60, "the platform host's receiver")


def _start_services(h: Hosts) -> None:
    env = _env(h)
    conf = str(Path(config.__file__).parent / "gunicorn.conf.py")
    bind = f"{h.lab.addresses['web']}:{PORT_WEB}"
    web = [sys.executable, "-m", "gunicorn", "-c", conf, "--bind", bind, "connector.app:create_app()"]
    h.procs["web"] = [h.lab.start("web", web, env=env, log=h.logs / "web.log")]
    cli = [sys.executable, "-m", "connector.cli"]
    for host in WORKERS:
        h.procs[host] = [
            h.lab.start(host, [*cli, "worker"], env=env, log=h.logs / f"{host}-{n}.log") for n in (1, 2)
        ]
    h.procs["worker-a"].append(
        h.lab.start("worker-a", [*cli, "scheduler"], env=env, log=h.logs / "sched.log")
    )
    wait_for(lambda: _web_ready(h.web_url), 60, "the web host's /readyz")
    conn = Redis.from_url(h.settings.redis_url)
    try:
        wait_for(lambda: len(Worker.all(connection=conn)) >= 2 * len(WORKERS), 60, "every worker registered")
    finally:
        conn.close()


def _received(h: Hosts, limit: int = 0) -> dict[str, Any] | None:
    """What the platform's receiver has: its events (verified, deduplicated; the last `limit`) and counts."""
    try:
        answer = requests.get(f"{h.platform_url}/_sandbox/events", params={"limit": limit}, timeout=30)
    except requests.RequestException:
        return None
    return answer.json() if answer.status_code == 200 else None


def _web_ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Load:
    """Posts ORDERS orders (four at a time, each retried with its key until answered) and makes WEBHOOKS
    stock changes in the store, each a webhook to the web host."""

    def __init__(self, url: str, auth: dict[str, str], variants: list[tuple[int, int]], server: Server):
        self.url, self.auth, self.variants, self.server = url, auth, variants, server
        self.accepted: dict[int, str] = {}
        self.unexpected: list[str] = []
        self.changes = 0
        self.threads = [
            threading.Thread(target=self._orders, daemon=True),
            threading.Thread(target=self._stock, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def _orders(self) -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self._order, range(ORDERS)))

    def _order(self, n: int) -> None:
        variant_id, price = self.variants[n % len(self.variants)]
        body = {
            "lines": [{"variant_id": variant_id, "quantity": 1, "unit_price_minor": price}],
            "currency": "USD",
            "buyer": {"email": f"buyer{n}@example.com"},
        }
        headers = {**self.auth, "Idempotency-Key": f"many-hosts-{n}"}
        for _ in range(30):
            try:
                answer = requests.post(f"{self.url}/v1/orders", json=body, headers=headers, timeout=10)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if answer.status_code in (200, 201):
                self.accepted[n] = answer.json()["id"]
                return
            if answer.status_code != 503:
                self.unexpected.append(f"{answer.status_code} {answer.text[:300]}")
                return
            time.sleep(0.5)
        self.unexpected.append(f"order {n} never answered")

    def _stock(self) -> None:
        items = sorted(self.server.store.inventory_items)
        for n in range(WEBHOOKS):
            self.server.store.set_inventory(items[n % len(items)], None, 50_000 + n)
            self.changes += 1
            if n % 100 == 99:
                time.sleep(0.4)


def _held_pushes(redis_url: str, pids: set[int]) -> list[int]:
    """The orders whose push a worker of `pids` is running, as Redis last heard from it."""
    conn = Redis.from_url(redis_url)
    try:
        held = []
        for worker in Worker.all(connection=conn):
            job_id = worker.get_current_job_id() if worker.pid in pids else None
            if job_id and job_id.startswith("order-push-"):
                held.append(int(job_id.rsplit("-", 1)[1]))
        return held
    finally:
        conn.close()


def _statuses(rt: runtime.Runtime, ids: list[int]) -> dict[int, str]:
    with rt.db.session() as session:
        return dict(session.execute(select(Order.id, Order.status).where(Order.id.in_(ids))).all())


def _in_flight(rt: runtime.Runtime, ids: list[int]) -> list[int]:
    """Those of these orders with a push attempt in flight (its lease taken, not ended): what a worker last
    reported to Redis may be an attempt that already ended and waits for its retry."""
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(Order.id).where(
                    Order.id.in_(ids), Order.status == "accepted", Order.push_started_at.is_not(None)
                )
            )
        )


def _cut_while_pushing(h: Hosts, rt: runtime.Runtime) -> tuple[float, list[int]]:
    """Take CUT_HOST's link down while one of its workers pushes an order; the cut's time and the orders it
    held then (in flight by the database). A push that ended before the cut took effect leaves nothing held:
    the link comes back within a second and the cut is made again."""
    pids = {proc.pid for proc in h.procs[CUT_HOST]}
    url = h.settings.redis_url
    for _ in range(5):
        wait_for(lambda: _held_pushes(url, pids), 60, f"{CUT_HOST} pushing an order", interval=0.01)
        h.lab.cut(CUT_HOST)
        cut_at = time.monotonic()
        held = _held_pushes(url, pids)  # what Redis last heard from the host
        time.sleep(0.5)
        pending = _in_flight(rt, held)
        if pending:
            return cut_at, pending
        h.lab.restore(CUT_HOST)
        time.sleep(0.5)
    raise AssertionError(f"{CUT_HOST} never held a push at a cut")


def _takeover(rt: runtime.Runtime, cut_at: float, held: list[int]) -> float | None:
    """Watch the held orders for CUT seconds from the cut; seconds from the cut until all were confirmed (by
    another host: the cut one cannot reach the database), None when they were not."""
    done_at: float | None = None
    while time.monotonic() < cut_at + CUT:
        if done_at is None and set(_statuses(rt, held).values()) == {"confirmed"}:
            done_at = time.monotonic() - cut_at
        time.sleep(0.1)
    return done_at


def _counts(rt: runtime.Runtime) -> dict[str, dict[str, int]]:
    with rt.db.session() as session:
        return {
            model.__tablename__: dict(
                session.execute(select(model.status, func.count()).group_by(model.status)).all()
            )
            for model in (Order, InboundEvent, Delivery, SyncRun)
        }


def _subscribed() -> Any:
    return EventPayload.type.like(SUBSCRIBED.replace("*", "%"))


def _all_done(rt: runtime.Runtime, h: Hosts, load: Load, server: Server) -> bool:
    counts = _counts(rt)
    with rt.db.session() as session:
        published = session.scalar(select(func.count()).where(_subscribed()))
    received = _received(h, limit=1) or {}
    distinct = received.get("requests", 0) - received.get("unverified", 0) - received.get("duplicates", 0)
    return (
        counts["orders"] == {"confirmed": ORDERS}
        and not server.emulator.webhooks._queue
        and "pending" not in counts["inbound_events"]
        and set(counts["deliveries"]) == {"succeeded"}
        and set(counts["sync_runs"]) <= {"succeeded", "failed"}
        and distinct == published
        and len(load.accepted) == ORDERS
    )


def _worked_after(redis_url: str, pids: set[int], before: int) -> bool:
    conn = Redis.from_url(redis_url)
    try:
        return sum(w.successful_job_count for w in Worker.all(connection=conn) if w.pid in pids) > before
    finally:
        conn.close()


def _jobs_done(redis_url: str, pids: set[int]) -> int:
    conn = Redis.from_url(redis_url)
    try:
        return sum(w.successful_job_count for w in Worker.all(connection=conn) if w.pid in pids)
    finally:
        conn.close()


def _setup(rt: runtime.Runtime, h: Hosts, server: Server) -> tuple[int, dict[str, str]]:
    """The schema, a platform client, the receiver's endpoint and the shop, synced once; (merchant, auth)."""
    upgrade(rt.db.engine)
    server.store.seed_catalog(10, 2, available=(100_000, 100_000))
    client_id, auth = platform_client(rt)
    _start_receiver(h)
    with rt.db.session() as session:
        endpoint = create_endpoint(
            session,
            rt.secrets,
            url=f"{h.platform_url}/webhooks/storelink",
            event_types=[SUBSCRIBED],
            allow_private=True,
        )
    added = requests.post(f"{h.platform_url}/_sandbox/secrets", json={"secret": endpoint.secret}, timeout=10)
    assert added.status_code == 201, added.text
    merchant_id = shopify_merchant(rt, server, client_id)
    wire_outbound(h.settings)  # the first sync's events, published here, get their deliveries too
    assert sync_now(rt, merchant_id).status == "succeeded"
    return merchant_id, auth


def _print_state(rt: runtime.Runtime, h: Hosts) -> None:
    """What is left undone, the queues and the end of each host's log (when the last wait times out)."""
    print(_counts(rt))
    conn = Redis.from_url(h.settings.redis_url)
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=conn)
        print(name, "queued", queue.count, "started", StartedJobRegistry(queue=queue).get_job_ids()[:10])
    conn.close()
    for log in sorted(h.logs.glob("*.log")):
        print(f"--- {log.name}\n{netns.tail(log, 3000)}")


def test_workers_on_many_hosts_take_over_a_cut_off_host_and_do_everything_once(hosts: Hosts) -> None:
    h = hosts
    rt = runtime.install(runtime.Runtime(settings=h.settings, redis_url=h.settings.redis_url))
    with serve(host=h.lab.local_address, bulk_step_delay=0.0) as server:
        merchant_id, auth = _setup(rt, h, server)
        _start_services(h)
        server.emulator.webhooks.subscribe("inventory_levels/update", f"{h.web_url}/webhooks/shopify")
        server.emulator.webhooks.set_senders(SENDERS)
        server.emulator.faults.set_random(1.0, [ApiFault(latency=0.1)])
        load = Load(h.web_url, auth, variant_prices(rt, merchant_id), server)
        started = time.monotonic()
        load.start()
        wait_for(lambda: len(load.accepted) >= ORDERS // 5, 60, "a fifth of the orders accepted")
        cut_pids = {proc.pid for proc in h.procs[CUT_HOST]}
        cut_at, held = _cut_while_pushing(h, rt)
        before_cut = _counts(rt)
        taken_over = _takeover(rt, cut_at, held)
        during_cut = _counts(rt)
        h.lab.restore(CUT_HOST)
        restored_jobs = _jobs_done(h.settings.redis_url, cut_pids)
        load.join(timeout=120)
        try:
            wait_for(lambda: _all_done(rt, h, load, server), 150, "everything done", interval=0.5)
        except AssertionError:
            _print_state(rt, h)
            raise
        elapsed = time.monotonic() - started
        wait_for(
            lambda: _worked_after(h.settings.redis_url, cut_pids, restored_jobs),
            30,
            f"{CUT_HOST} working again",
        )
        alive = {host: [p.poll() for p in procs] for host, procs in h.procs.items()}
        store_orders = [o.source_identifier for o in server.store.orders.values()]
        store_stock, acknowledged = shopify_stock_and_acknowledged(server)
        received = _received(h)
        for procs in h.procs.values():
            for proc in procs:
                h.lab.stop(proc)
    print(
        f"held {held}; taken over after {taken_over} s (bound {TAKEOVER_BOUND} s); load and drain {elapsed:.1f} s;"
        f" at the cut {before_cut}; at the restore {during_cut}; receiver {dict(received or {}, events=None)}"
    )
    assert received is not None
    _check(rt, load, store_orders, store_stock, acknowledged, [e["webhook_id"] for e in received["events"]])
    assert alive == {host: [None] * len(procs) for host, procs in h.procs.items()}  # all rode out the cut
    assert taken_over is not None, f"orders {held} held by {CUT_HOST} were not taken over during the cut"
    assert taken_over <= TAKEOVER_BOUND
    rt.close()
    runtime._current = None


def _check(
    rt: runtime.Runtime,
    load: Load,
    store_orders: list[str],
    store_stock: dict[str, int],
    acknowledged: set[str],
    received: list[str],
) -> None:
    assert load.unexpected == []
    assert len(load.accepted) == ORDERS
    assert sorted(store_orders) == sorted(push.push_key(public_id) for public_id in load.accepted.values())
    assert len(acknowledged) >= WEBHOOKS
    assert_store_webhooks_handled(rt, acknowledged, store_stock)
    with rt.db.session() as session:
        published = set(session.scalars(select(EventPayload.id).where(_subscribed())))
        runs = dict(session.execute(select(SyncRun.status, func.count()).group_by(SyncRun.status)).all())
    assert set(received) == published and len(received) == len(published)
    assert set(runs) <= {"succeeded"}, runs
