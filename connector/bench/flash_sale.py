"""Benchmark `flash-sale`: a live pin sold out by concurrent buyers through gunicorn, without overselling.

A pin with `allocation` units (per-buyer limit `limit`) is put on sale in a live session of a Shopify merchant
whose store is the emulator (served in this process). `buyers` buyers, spread over load processes of their
own (asyncio, one kept-alive connection per buyer where the server keeps it), send `attempts` purchase
attempts of one unit each to `POST /v1/orders` of the real app under gunicorn (`config/gunicorn.conf.py`).
Two `storelink worker` processes then push the accepted orders to the store; the sale must end with exactly
`allocation` units confirmed and in the store, none over, and no buyer over the limit.

The baseline, measured in the same run with the same gunicorn settings and the same load, is a bare Flask
endpoint that parses the same JSON body and runs only the same Lua purchase script against a pin counter of
its own. It runs before the sale and again after it (the machine is shared: the two bracket whatever else it
was doing), and the figure is the ratio of Storelink's purchase requests per second to the baseline's over
both runs (target at least 0.8), and Storelink's p99 latency against the baseline's (target at most twice it).

The workers start when the burst is over (`push_during_sale=False`, the default): the store emulator shares
the machine's cores with everything else here, where in production the store is somebody else's servers.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import requests
from flask import Flask, Response, request
from rich.console import Console
from rich.table import Table

from connector.bench.buyers import ACCEPTED, FLASH_PRICE_MINOR, REFUSED, LoadResult, SaleSpec, load
from connector.bench.errors import BenchError
from connector.bench.load import percentile
from connector.bench.processes import Stack, free_port, service_environment, start_gunicorn, worker_argv
from connector.infra import runtime

logger = logging.getLogger(__name__)

TARGET_RATIO: Final = 0.8
TARGET_P99_FACTOR: Final = 2.0
BARE_PIN: Final = 900_000_001
"""The baseline's pin counter id (no such pin exists in the database)."""
PUSH_WORKERS: Final = 2


# --- the baseline endpoint (gunicorn imports this module for it) -------------------------------------------------


def bare_app() -> Flask:
    """The baseline: parse the purchase body and run the pin purchase Lua script, nothing else."""
    from redis import Redis

    from connector.stock import counters, holds

    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    pin_id = int(os.environ["BENCH_BARE_PIN"])
    app = Flask("bare")

    @app.post("/v1/orders")
    def buy() -> Response:
        body = json.loads(request.get_data())
        key = request.headers.get("Idempotency-Key", "")
        line = body["lines"][0]
        outcome = counters.buy_from_pins(
            redis,
            [
                counters.PinLine(
                    pin_id, line["quantity"], line["unit_price_minor"], counters.new_reservation_id()
                )
            ],
            buyer=body["buyer"]["ref"],
            expires_at=datetime.now(UTC) + holds.DEFAULT_HOLD,
            mark=counters.idempotency_mark(0, key),
            token=secrets.token_hex(8),
        )
        return Response(status=ACCEPTED if outcome.ok else REFUSED)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(status=200)

    return app


def seed_bare_counter(redis: Any, pin_id: int, allocation: int, limit: int) -> None:
    """The baseline's pin counter: on sale, `allocation` units, the flash price and the per-buyer limit."""
    from connector.stock import counters

    counter = counters.pin_key(pin_id)
    redis.delete(counter, counters.holds_key(counter), counters.buyers_key(counter))
    redis.hset(
        counter,
        mapping={
            "n": allocation,
            "gen": secrets.token_hex(8),
            "act": "1",
            "price": str(FLASH_PRICE_MINOR),
            "cur": "USD",
            "lim": limit,
            "until": 0,
        },
    )


# --- the sale -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shop:
    client_id: int
    api_key: str
    merchant_id: int
    variant_id: int
    live_session_id: int
    pin_id: int


def setup_shop(rt: runtime.Runtime, store: Any, base_url: str, *, allocation: int, limit: int) -> Shop:
    """A platform client, a Shopify merchant on the emulator with one variant in stock, and a live session
    that is live with the variant pinned (`allocation` units at the flash price, `limit` per buyer)."""
    from sqlalchemy import update

    from connector.bench.shopify import add_shopify_merchant, bind_variants
    from connector.infra.models import InventoryLevel, Merchant
    from connector.live import sessions
    from connector.merchants import clients

    with rt.db.session() as session:
        client, key = clients.create_client(session, "flash-sale-platform")
        client_id = client.id
    merchant_id = add_shopify_merchant(rt, base_url, name="flash-sale-shop")
    (variant_id,) = bind_variants(rt, merchant_id, store)
    with rt.db.session() as session:
        session.execute(
            update(Merchant).where(Merchant.id == merchant_id).values(platform_client_id=client_id)
        )
        session.add(
            InventoryLevel(
                merchant_id=merchant_id,
                variant_id=variant_id,
                location_ref="default",
                available=allocation * 5,
                source_updated_at=datetime.now(UTC),
            )
        )
    created = sessions.create_session(
        rt, client_id, merchant_id=merchant_id, title="Flash sale", creator_ref=None, scheduled_start=None
    )
    pin = sessions.create_pin(
        rt,
        client_id,
        created["id"],
        variant_id=variant_id,
        flash_price_minor=FLASH_PRICE_MINOR,
        allocation=allocation,
        per_buyer_limit=limit,
        countdown_ends_at=None,
        low_stock_threshold=None,
    )
    sessions.start_session(rt, client_id, created["id"])
    return Shop(client_id, key, merchant_id, variant_id, created["id"], pin["id"])


def _pushed(rt: runtime.Runtime, live_session_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from connector.infra.models import Order

    with rt.db.session() as session:
        return {
            status: int(count)
            for status, count in session.execute(
                select(Order.status, func.count())
                .where(Order.live_session_id == live_session_id)
                .group_by(Order.status)
            )
        }


def _wait_pushed(rt: runtime.Runtime, live_session_id: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = _pushed(rt, live_session_id)
        if not counts.get("accepted"):
            return counts
        if time.monotonic() > deadline:
            raise BenchError(f"orders not pushed within {timeout:.0f} s: {counts}")
        time.sleep(0.1)


def _tally(rt: runtime.Runtime, store: Any, shop: Shop, limit: int) -> dict[str, int]:
    """Units confirmed in the database, units in the store, and buyers over the limit."""
    from sqlalchemy import select

    from connector.infra.models import Order, OrderLine

    with rt.db.session() as session:
        rows = session.execute(
            select(Order.status, Order.buyer, OrderLine.quantity)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(Order.live_session_id == shop.live_session_id)
        ).all()
    confirmed = sum(q for status, _, q in rows if status == "confirmed")
    per_buyer: dict[str, int] = {}
    for status, buyer, quantity in rows:
        if status in ("accepted", "confirmed"):
            ref = str((buyer or {}).get("ref", ""))
            per_buyer[ref] = per_buyer.get(ref, 0) + quantity
    store_units = sum(line.quantity for order in list(store.orders.values()) for line in order.line_items)
    return {
        "confirmed": confirmed,
        "store_units": store_units,
        "store_orders": len(store.orders),
        "buyers_over_limit": sum(1 for units in per_buyer.values() if limit and units > limit),
        "buyers_served": len(per_buyer),
    }


@dataclass
class SaleResult:
    allocation: int
    limit: int
    buyers: int
    attempts: int
    ours: LoadResult
    bare_runs: list[LoadResult]
    tally: dict[str, int]
    orders: dict[str, int]
    push_seconds: float

    @property
    def accepted(self) -> int:
        return self.ours.statuses.get(ACCEPTED, 0)

    @property
    def oversold(self) -> int:
        sold = max(self.tally["confirmed"], self.tally["store_units"], self.accepted)
        return max(0, sold - self.allocation)

    @property
    def bare(self) -> LoadResult:
        """The baseline runs (before and after the sale) as one: their mean rate, all their latencies."""
        merged = LoadResult(latencies_ms=[lat for run in self.bare_runs for lat in run.latencies_ms])
        for run in self.bare_runs:
            for status, count in run.statuses.items():
                merged.statuses[status] = merged.statuses.get(status, 0) + count
        merged.started, merged.finished = 0.0, sum(run.seconds for run in self.bare_runs)
        return merged

    @property
    def ratio(self) -> float:
        bare = self.bare.rate
        return self.ours.rate / bare if bare else 0.0


def warm(spec: SaleSpec, count: int = 40) -> None:
    """Requests every gunicorn worker answers before the clock starts (imports, caches, script loading);
    refused at the price check in Redis, so nothing is bought."""
    body = {
        "lines": [{"variant_id": spec.variant_id, "quantity": 1, "unit_price_minor": FLASH_PRICE_MINOR + 1}],
        "currency": "USD",
        "buyer": {"ref": "warm-up"},
        "live_session_id": spec.live_session_id,
    }
    for n in range(count):
        requests.post(
            f"http://127.0.0.1:{spec.port}/v1/orders",
            json=body,
            headers={"Authorization": f"Bearer {spec.auth}", "Idempotency-Key": f"warm-{spec.tag}-{n}"},
            timeout=30,
        )


def _start_workers(stack: Stack) -> None:
    for n in range(PUSH_WORKERS):
        stack.start(f"worker-{n}", worker_argv("orders"))


def _bare_round(
    stack: Stack,
    rt: runtime.Runtime,
    shop: Shop,
    buyers: int,
    attempts: int,
    allocation: int,
    limit: int,
    load_processes: int,
    tag: str,
) -> LoadResult:
    """One burst at the baseline endpoint, its pin counter fresh (same allocation and limit as the sale)."""
    seed_bare_counter(rt.redis, BARE_PIN, allocation, limit)
    port = free_port()
    start_gunicorn(
        stack,
        "bare",
        "connector.bench.flash_sale:bare_app()",
        port,
        {"BENCH_REDIS_URL": stack.env["REDIS_URL"], "BENCH_BARE_PIN": str(BARE_PIN)},
    )
    try:
        spec = SaleSpec(port, shop.api_key, shop.live_session_id, shop.variant_id, buyers, attempts, tag)
        warm(spec)
        return load(spec, processes=load_processes)
    finally:
        stack.stop()


def sale(
    rt: runtime.Runtime,
    env: dict[str, str],
    logdir: Path,
    *,
    buyers: int,
    attempts: int,
    allocation: int,
    limit: int,
    load_processes: int = 2,
    push_during_sale: bool = False,
    push_timeout: float = 600.0,
    console: Console | None = None,
) -> SaleResult:
    """The benchmark's core on a prepared runtime (`env` is what its processes get): the baseline burst, the
    sale through Storelink, the pushes, and the tally."""
    from connector.sandbox.shopify.app import serve

    say = console.print if console is not None else (lambda *_: None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the store emulator's access log
    with serve(maximum_available=1_000_000, restore_rate=100_000) as server:
        server.store.seed_catalog(1, 1, available=(allocation * 5, allocation * 5))
        server.emulator.query("{ shop { name } }")  # the emulator's first document loads its schema
        shop = setup_shop(rt, server.store, server.url, allocation=allocation, limit=limit)
        stack = Stack(env, logdir)
        try:
            say(
                f"baseline (before the sale): {buyers} buyers, {attempts:,} attempts at the bare Lua endpoint…"
            )
            before = _bare_round(
                stack, rt, shop, buyers, attempts, allocation, limit, load_processes, "bare0"
            )

            port = free_port()
            start_gunicorn(stack, "web", "connector.app:create_app()", port)
            spec = SaleSpec(
                port, shop.api_key, shop.live_session_id, shop.variant_id, buyers, attempts, "sale"
            )
            warm(spec)
            if push_during_sale:
                _start_workers(stack)
            say(f"sale: {buyers} buyers, {attempts:,} attempts at {allocation:,} units through gunicorn…")
            ours = load(spec, processes=load_processes)
            if not push_during_sale:
                _start_workers(stack)
            say("pushing the accepted orders to the store…")
            began = time.monotonic()
            orders = _wait_pushed(rt, shop.live_session_id, push_timeout)
            push_seconds = time.monotonic() - began
            stack.stop()

            say(
                f"baseline (after the sale): {buyers} buyers, {attempts:,} attempts at the bare Lua endpoint…"
            )
            after = _bare_round(stack, rt, shop, buyers, attempts, allocation, limit, load_processes, "bare1")
        finally:
            stack.stop()
        tally = _tally(rt, server.store, shop, limit)
    return SaleResult(allocation, limit, buyers, attempts, ours, [before, after], tally, orders, push_seconds)


# --- the command --------------------------------------------------------------------------------------------------


def report(result: SaleResult, *, backend: str, console: Console) -> dict[str, Any]:
    """Print the table and return the figures (the command's last line)."""
    ours, bare = result.ours, result.bare
    p99, bare_p99 = percentile(ours.latencies_ms, 99), percentile(bare.latencies_ms, 99)
    table = Table(
        title=f"flash-sale ({backend}): {result.buyers} buyers, {result.attempts:,} attempts, "
        f"{result.allocation:,} units, {result.limit} per buyer"
    )
    for col in ("measure", "baseline", "storelink", "target"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    runs = " / ".join(f"{run.rate:,.0f}" for run in result.bare_runs)
    table.add_row("purchase requests/s", f"{bare.rate:,.0f} ({runs})", f"{ours.rate:,.0f}", "")
    table.add_row("ratio to bare Lua", "", f"{result.ratio:.2f}", f">= {TARGET_RATIO}")
    table.add_row(
        "p50 / p99 ms",
        f"{percentile(bare.latencies_ms, 50):.0f} / {bare_p99:.0f}",
        f"{percentile(ours.latencies_ms, 50):.0f} / {p99:.0f}",
        f"p99 <= {TARGET_P99_FACTOR:g} x baseline",
    )
    table.add_row(
        "201 / 409 / other",
        f"{bare.statuses.get(ACCEPTED, 0):,} / {bare.statuses.get(REFUSED, 0):,} / "
        f"{bare.sent - bare.statuses.get(ACCEPTED, 0) - bare.statuses.get(REFUSED, 0):,}",
        f"{ours.statuses.get(ACCEPTED, 0):,} / {ours.statuses.get(REFUSED, 0):,} / "
        f"{ours.sent - ours.statuses.get(ACCEPTED, 0) - ours.statuses.get(REFUSED, 0):,}",
        "",
    )
    table.add_row("units confirmed", "", f"{result.tally['confirmed']:,}", "= allocation")
    table.add_row("units in the store", "", f"{result.tally['store_units']:,}", "= allocation")
    table.add_row("oversold units", "", f"{result.oversold:,}", "0")
    table.add_row("buyers over limit", "", f"{result.tally['buyers_over_limit']:,}", "0")
    table.add_row("pushes done in, s", "", f"{result.push_seconds:.1f}", "")
    console.print(table)
    other = {str(k): v for k, v in sorted(ours.statuses.items()) if k not in (ACCEPTED, REFUSED)}
    if other:
        console.print(f"unexpected answers: {other}")
    meets = (
        result.tally["confirmed"] == result.allocation
        and result.oversold == 0
        and result.tally["buyers_over_limit"] == 0
        and result.ratio >= TARGET_RATIO
        and p99 <= TARGET_P99_FACTOR * bare_p99
        and not other
    )
    return {
        "bench": "flash-sale",
        "database": backend.lower(),
        "buyers": result.buyers,
        "attempts": result.attempts,
        "allocation": result.allocation,
        "per_buyer_limit": result.limit,
        "accepted": result.accepted,
        "confirmed": result.tally["confirmed"],
        "store_units": result.tally["store_units"],
        "oversold": result.oversold,
        "buyers_over_limit": result.tally["buyers_over_limit"],
        "errors": sum(other.values()),
        "purchases_per_s": round(ours.rate),
        "baseline_per_s": round(bare.rate),
        "baseline_runs_per_s": [round(run.rate) for run in result.bare_runs],
        "ratio": round(result.ratio, 3),
        "p50_ms": round(percentile(ours.latencies_ms, 50), 1),
        "p99_ms": round(p99, 1),
        "baseline_p99_ms": round(bare_p99, 1),
        "push_seconds": round(result.push_seconds, 1),
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": round(TARGET_P99_FACTOR * bare_p99, 1),
        "target_confirmed": result.allocation,
        "target_oversold": 0,
        "meets_targets": meets,
    }


def run(
    *,
    database_url: str | None,
    console: Console,
    buyers: int = 200,
    attempts: int = 20_000,
    allocation: int = 1_000,
    limit: int = 10,
    load_processes: int = 2,
    push_during_sale: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="storelink-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "logs").mkdir()
        with service_environment(database_url, workdir, "flash_sale", env={"LOG_JSON": "true"}) as (
            env,
            rt,
            _,
        ):
            result = sale(
                rt,
                env,
                workdir / "logs",
                buyers=buyers,
                attempts=attempts,
                allocation=allocation,
                limit=limit,
                load_processes=load_processes,
                push_during_sale=push_during_sale,
                console=console,
            )
    return report(result, backend="PostgreSQL" if database_url else "SQLite", console=console)
