"""End to end: `storelink up` under load while its Redis is stopped for 30 s and started again on the same
port. Workers and the scheduler wait for Redis and carry on (none exits, nothing is given up), /readyz says
503 meanwhile and 200 after, and every order the API accepted is pushed to the store once, every store
webhook the app acknowledged is applied once (or skipped as older than a later read of the store's stock),
the stored stock ends as the store's, and every event reaches the platform once."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from config.settings import Settings
from connector.infra import runtime
from connector.infra.embedded_redis import find_redis_server
from connector.infra.models import (
    Delivery,
    EventPayload,
    InboundEvent,
    Order,
)
from connector.infra.queue import QUEUE_NAMES
from connector.orders import push
from connector.sandbox import platform
from connector.sandbox.shopify import Server, serve
from connector.worker import wire_outbound
from tests.helpers import (
    SQLITE_ONLY,
    Up,
    assert_store_webhooks_handled,
    free_port,
    platform_client,
    shopify_merchant,
    shopify_stock_and_acknowledged,
    sync_now,
    variant_prices,
    wait_for,
)
from webhooks.outbound.endpoints import create_endpoint

pytestmark = [pytest.mark.slow, SQLITE_ONLY]

OUTAGE = 30.0


class PrivateRedis:
    """A redis-server of the test's own, with an append-only file, so it can stop and start on one port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--dir", str(self.directory)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn = Redis.from_url(self.url)
        wait_for(lambda: _pings(conn), 10, "the private redis-server to answer")
        conn.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # redis-server writes its append-only file and exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _pings(conn: Redis) -> bool:
    try:
        return bool(conn.ping())
    except Exception:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Load(threading.Thread):
    """Posts orders to the Platform API and changes stock in the store (which sends webhooks) until stopped;
    remembers the orders the API accepted."""

    def __init__(
        self, url: str, auth: dict[str, str], variants: list[tuple[int, int]], server: Server
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.auth, self.variants, self.server = url, auth, variants, server
        self.accepted: list[str] = []
        self.refused = 0
        self.unexpected: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        items = sorted(self.server.store.inventory_items)
        n = 0
        while not self.stop.wait(0.1):
            n += 1
            self.server.store.set_inventory(items[n % len(items)], None, 50_000 + n)
            variant_id, price = self.variants[n % len(self.variants)]
            body = {
                "lines": [{"variant_id": variant_id, "quantity": 1, "unit_price_minor": price}],
                "currency": "USD",
                "buyer": {"email": f"buyer{n}@example.com"},
            }
            headers = {**self.auth, "Idempotency-Key": f"load-{n}"}
            try:
                answer = requests.post(f"{self.url}/v1/orders", json=body, headers=headers, timeout=10)
            except requests.RequestException:
                self.refused += 1
                continue
            if answer.status_code == 201:
                self.accepted.append(answer.json()["id"])
            elif answer.status_code == 503:  # refused while Redis is away
                self.refused += 1
            else:
                self.unexpected.append(f"{answer.status_code} {answer.text}")


def _readyz(up: Up) -> int:
    return requests.get(f"{up.url}/readyz", timeout=5).status_code


def test_up_rides_out_a_redis_outage_and_processes_everything_once(
    settings: Settings, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"redis_url": private_redis.url, "webhook_allow_private_urls": True}  # the platform is local
    )
    rt = runtime.install(runtime.Runtime(settings=settings, redis_url=private_redis.url))
    with serve(bulk_step_delay=0.0) as server, platform.serve() as receiver_server:
        receiver = receiver_server.receiver
        server.store.seed_catalog(4, 2, available=(100_000, 100_000))
        client_id, auth = platform_client(rt)
        with rt.db.session() as session:
            endpoint = create_endpoint(
                session, rt.secrets, url=receiver_server.url, event_types=["*"], allow_private=True
            )
        receiver.add_secret(endpoint.secret)
        merchant_id = shopify_merchant(rt, server, client_id)
        wire_outbound(settings)  # the catalog's events, published here, get their deliveries too
        assert sync_now(rt, merchant_id).status == "succeeded"
        up = Up(settings, tmp_path, WEBHOOK_ALLOW_PRIVATE_URLS="true")
        load: Load | None = None
        try:
            up.wait_ready()
            server.emulator.webhooks.subscribe("inventory_levels/update", f"{up.url}/webhooks/shopify")
            processes = up.supervised()
            load = Load(up.url, auth, variant_prices(rt, merchant_id), server)
            load.start()
            wait_for(lambda: len(load.accepted) >= 10, 60, "orders accepted before the outage")

            private_redis.stop()
            wait_for(lambda: _readyz(up) == 503, 10, "/readyz to report Redis away")
            time.sleep(OUTAGE)
            assert up.proc.poll() is None
            private_redis.start()
            wait_for(lambda: _readyz(up) == 200, 30, "/readyz to report ready again")
            accepted = len(load.accepted)
            wait_for(lambda: len(load.accepted) >= accepted + 10, 60, "orders accepted after the outage")
            load.stop.set()
            load.join(timeout=30)

            try:
                wait_for(
                    lambda: _all_done(rt, load.accepted), 120, "every order, webhook and event", interval=0.5
                )
            except AssertionError:
                _diagnose(rt, private_redis.url, tmp_path)
                raise
            assert up.supervised() == processes  # web, workers and scheduler waited; none was restarted
        finally:
            if load is not None:
                load.stop.set()
            up.stop()
        store_orders = [o.source_identifier for o in server.store.orders.values()]
        store_stock, acknowledged = shopify_stock_and_acknowledged(server)

    assert load.unexpected == []
    assert load.refused > 0  # the API did notice the outage
    assert sorted(store_orders) == sorted(push.push_key(public_id) for public_id in load.accepted)
    with rt.db.session() as session:
        statuses = dict(session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
        published = set(session.scalars(select(EventPayload.id)))
        deliveries = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
    assert statuses == {"confirmed": len(load.accepted)}
    assert_store_webhooks_handled(
        rt, acknowledged, store_stock
    )  # stale ones skipped after the reconciliation
    assert deliveries == {"succeeded": len(published)}
    assert {r.webhook_id for r in receiver.received()} == published
    assert len(receiver.received()) == len(published)
    log = (tmp_path / "up.log").read_text()
    # Once per waiting loop (two workers, their scheduler threads, the scheduler), not once per retry.
    assert 0 < log.count("Redis unreachable; waiting") <= 5
    assert "Redis reachable again" in log
    rt.close()
    runtime._current = None


def _all_done(rt: runtime.Runtime, accepted: list[str]) -> bool:
    with rt.db.session() as session:
        orders = dict(session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
        pending_inbound = session.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "pending")
        )
        pending_deliveries = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status != "succeeded")
        )
    return orders == {"confirmed": len(accepted)} and not pending_inbound and not pending_deliveries


def _diagnose(rt: runtime.Runtime, redis_url: str, tmp_path: Path) -> None:
    """Print what is left undone and the queues' registries (when the last wait times out)."""
    with rt.db.session() as session:
        for model in (InboundEvent, Order, Delivery):
            counts = session.execute(select(model.status, func.count()).group_by(model.status)).all()
            print(model.__tablename__, dict(counts))
    conn = Redis.from_url(redis_url)
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=conn)
        print(name, "queued", queue.count, "started", StartedJobRegistry(queue=queue).get_job_ids())
        print(name, "scheduled", ScheduledJobRegistry(queue=queue).get_job_ids())
        for job_id in FailedJobRegistry(queue=queue).get_job_ids()[:5]:
            job = queue.fetch_job(job_id)
            print(name, "failed", job_id, job and job.func_name, job and (job.exc_info or "")[-800:])
    conn.close()
    print((tmp_path / "up.log").read_text()[-10000:])
