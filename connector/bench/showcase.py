"""Benchmark `showcase`: concurrent reads of a 200-item showcase through gunicorn while store stock webhooks
change 5% of its items per second, against a bare endpoint serving the same JSON precomputed in Redis.

A feed merchant (one variant per product, stock tracked) gets a showcase of `items` hand-placed products. The
real app runs under gunicorn (`config/gunicorn.conf.py`) with one `storelink worker` on the events queue (it
applies the stock webhooks and refreshes showcases). During both measured runs a changer in this process
sends signed `inventory.updated` webhooks to the real app, `share` of the items per second, each setting a
new, ever-growing quantity (so a read's figure names the change it reflects). Readers in processes of their
own (`connector.bench.readers`) send `GET /v1/showcases/{id}?limit=<items>` and parse every answer.

The baseline, under the same gunicorn settings and the same load in the same run, is a bare Flask endpoint
that returns the showcase's JSON precomputed in Redis. The figure is the ratio of Storelink's read rate to
the baseline's (target at least 0.6), with Storelink's p99 latency.

Staleness: a read is stale when an item shows a quantity older than one the store sent at least `BOUND_S`
seconds before the read began (the bound Storelink states for a showcase read: the stock webhook's
processing, then at most `connector.showcases.cache.CACHE_MS` of a page cached in Redis; `Cache-Control:
max-age=2` lets a client keep a page as long again, which the readers here do not).
The target is 0 stale reads. The last line printed is one JSON object.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from flask import Flask, Response
from rich.console import Console

from connector.bench.load import percentile
from connector.bench.processes import (
    Stack,
    free_port,
    service_environment,
    start_gunicorn,
    wait_for_workers,
    worker_argv,
)
from connector.bench.readers import Read, read_load
from connector.infra import runtime

logger = logging.getLogger(__name__)

TARGET_RATIO: Final = 0.6
BOUND_S: Final = 2.0
"""The staleness bound stated for showcase reads (seconds from the store's change)."""
BARE_KEY: Final = "bench:showcase:json"
FIRST_QUANTITY: Final = 1_000


# --- the baseline endpoint (gunicorn imports this module for it) ---------------------------------------------


def bare_app() -> Flask:
    """The baseline: the showcase's JSON, precomputed in Redis, returned as it is."""
    from redis import Redis

    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    app = Flask("bare")

    @app.get("/v1/showcases/<int:showcase_id>")
    def read(showcase_id: int) -> Response:
        return Response(redis.get(BARE_KEY), mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(status=200)

    return app


# --- setup ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    api_key: str
    merchant_id: int
    showcase_id: int
    secret: str
    refs: dict[int, str]
    """Variant external id per product id."""


def setup(rt: runtime.Runtime, items: int) -> Setup:
    """A platform client, a feed merchant with `items` products in stock, and its showcase of them all."""
    from connector.infra.models import InventoryLevel, Product, Variant
    from connector.merchants import clients
    from connector.merchants.records import create_merchant
    from connector.sandbox.feed_push import new_secret
    from connector.showcases import showcases

    secret = new_secret()
    with rt.db.session() as session:
        client, key = clients.create_client(session, "showcase-platform")
        client_id = client.id
        merchant = create_merchant(
            session,
            rt.secrets,
            kind="feed",
            name="showcase-brand",
            config={"url": "https://feeds.example.com/brand.csv"},
            credentials={"webhook_secret": secret},
            platform_client_id=client_id,
        )
        refs: dict[int, str] = {}
        for n in range(items):
            product = Product(
                merchant_id=merchant.id, external_id=f"P-{n}", title=f"Product {n}", media=[], content_hash=""
            )
            session.add(product)
            session.flush()
            variant = Variant(
                merchant_id=merchant.id,
                product_id=product.id,
                external_id=f"SKU-{n}",
                title=f"Product {n}",
                price_minor=1_000 + n,
                currency="USD",
                content_hash="",
            )
            session.add(variant)
            session.flush()
            session.add(
                InventoryLevel(
                    merchant_id=merchant.id,
                    variant_id=variant.id,
                    location_ref="default",
                    available=FIRST_QUANTITY,
                )
            )
            refs[product.id] = variant.external_id
        merchant_id = merchant.id
    spec = showcases.ShowcaseSpec(
        owner_kind="merchant", title="Bench", handle="bench", merchant_id=merchant_id, product_ids=list(refs)
    )
    made = showcases.create_showcase(rt, client_id, spec)
    return Setup(key, merchant_id, made["id"], secret, refs)


# --- the changer ------------------------------------------------------------------------------------------------


@dataclass
class Changer:
    """Sends stock webhooks to the real app: `per_second` item changes a second, each a new quantity."""

    port: int
    setup: Setup
    per_second: float
    sent: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stock-changer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        import requests

        from connector.sandbox.feed_push import FeedPusher

        url = f"http://127.0.0.1:{self.port}/webhooks/feed/{self.setup.merchant_id}"
        pusher = FeedPusher(url, self.setup.secret, requests.Session())
        products = itertools.cycle(sorted(self.setup.refs))
        quantity = itertools.count(FIRST_QUANTITY + 1)
        ticks_per_second = 5.0
        per_tick = max(1, round(self.per_second / ticks_per_second))
        next_at = time.monotonic()
        while not self._stop.is_set():
            chosen = [next(products) for _ in range(per_tick)]
            values = {pid: next(quantity) for pid in chosen}
            sent_at = time.time()
            delivery = pusher.inventory([(self.setup.refs[pid], q) for pid, q in values.items()])
            try:
                ok = pusher.send(delivery, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                for pid, q in values.items():
                    self.sent.setdefault(pid, []).append((sent_at, q))
            else:
                self.failures += 1
            next_at += per_tick / self.per_second
            self._stop.wait(max(0.0, next_at - time.monotonic()))


# --- staleness --------------------------------------------------------------------------------------------------


def stale_reads(reads: list[Read], sent: dict[int, list[tuple[float, int]]], bound: float) -> int:
    """Reads showing, for some item, a quantity older than one sent at least `bound` seconds before them."""
    stale = 0
    for began, _, status, shown in reads:
        if status != 200:
            continue
        for product_id, value in shown.items():
            due = [q for at, q in sent.get(product_id, ()) if at <= began - bound]
            if due and (value is None or value < due[-1]):
                stale += 1
                break
    return stale


# --- the run ----------------------------------------------------------------------------------------------------


def _rate(reads: list[Read], seconds: float) -> float:
    return sum(1 for r in reads if r[2] == 200) / seconds


def _measure(
    rt: runtime.Runtime,
    stack: Stack,
    made: Setup,
    *,
    items: int,
    share: float,
    seconds: float,
    processes: int,
    concurrency: int,
    say: Any,
) -> tuple[list[Read], list[Read], Changer]:
    """Start the app, the baseline and a worker; read both while the changer runs; (bare, ours, changer)."""
    import requests

    port, bare_port = free_port(), free_port()
    start_gunicorn(stack, "web", "connector.app:create_app()", port)
    start_gunicorn(
        stack,
        "bare",
        "connector.bench.showcase:bare_app()",
        bare_port,
        {"BENCH_REDIS_URL": stack.env["REDIS_URL"]},
    )
    stack.start("worker", worker_argv("events"))
    wait_for_workers(rt.redis, 1)  # the changes the readers look for are applied from the start
    path = f"/v1/showcases/{made.showcase_id}?limit={items}"
    first = requests.get(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {made.api_key}"}, timeout=30
    )
    first.raise_for_status()
    rt.redis.set(BARE_KEY, first.content)
    changer = Changer(port, made, per_second=share * items)
    changer.start()
    try:
        say(f"baseline: {processes}x{concurrency} readers of the precomputed JSON for {seconds:g}s…")
        bare = read_load(
            bare_port, path, made.api_key, processes=processes, concurrency=concurrency, seconds=seconds
        )
        say(f"showcase: the same readers through Storelink, {share:.0%} of items changing per second…")
        ours = read_load(
            port, path, made.api_key, processes=processes, concurrency=concurrency, seconds=seconds
        )
    finally:
        changer.stop()
    return bare, ours, changer


def run(
    *,
    database_url: str | None,
    console: Console | None = None,
    items: int = 200,
    share: float = 0.05,
    seconds: float = 10.0,
    processes: int = 2,
    concurrency: int = 8,
) -> dict[str, Any]:
    say = console.print if console is not None else (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="storelink-bench-showcase-") as tmp:
        workdir = Path(tmp)
        logdir = workdir / "logs"
        logdir.mkdir()
        with service_environment(database_url, workdir, "showcase", env={"LOG_LEVEL": "WARNING"}) as (
            env,
            rt,
            _,
        ):
            made = setup(rt, items)
            stack = Stack(env, logdir)
            try:
                bare, ours, changer = _measure(
                    rt,
                    stack,
                    made,
                    items=items,
                    share=share,
                    seconds=seconds,
                    processes=processes,
                    concurrency=concurrency,
                    say=say,
                )
            finally:
                stack.stop()
    ok = [r for r in ours if r[2] == 200]
    rate, bare_rate = _rate(ours, seconds), _rate(bare, seconds)
    result = {
        "items": items,
        "changes_per_second": share * items,
        "bound_s": BOUND_S,
        "reads": len(ok),
        "failed_reads": len(ours) - len(ok),
        "rate": round(rate, 1),
        "bare_rate": round(bare_rate, 1),
        "ratio": round(rate / bare_rate, 3) if bare_rate else 0.0,
        "target_ratio": TARGET_RATIO,
        "stale_reads": stale_reads(ours, changer.sent, BOUND_S),
        "p99_ms": round(percentile([r[1] for r in ok], 99), 1),
        "baseline_p99_ms": round(percentile([r[1] for r in bare if r[2] == 200], 99), 1),
        "changes_sent": sum(len(v) for v in changer.sent.values()),
        "change_failures": changer.failures,
    }
    say(json.dumps(result, indent=1))
    return result
