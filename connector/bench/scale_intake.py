"""Benchmark `scale`, part two: signed webhook intake spread over many merchants against one merchant.

The same closed-loop flood (same load processes, same connections) of signed inventory webhooks goes through
gunicorn to Storelink's receiver for one merchant, then spread evenly over many merchants; two burst workers
then drain what each flood stored. Intake rate is taken for both steps: accepted per second and processed
per second. The figure is the lower of the two ratios (many merchants ÷ one merchant).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from connector.bench.load import flood, percentile
from connector.bench.processes import Stack, free_port, start_gunicorn, wait_for_workers, worker_argv
from connector.bench.signed_pushes import build_requests

logger = logging.getLogger(__name__)

VARIANTS_PER_MERCHANT = 5


def make_merchants(rt: Any, workdir: Path, count: int, tag: str) -> list[tuple[int, str, list[str]]]:
    """`count` feed merchants with a webhook secret each and a few bound variants (inserted as a sync
    would write them): (merchant id, secret, variant refs)."""
    from connector.infra.models import Product, Variant
    from connector.merchants.records import create_merchant
    from connector.sandbox.feed_push import new_secret

    feeds = workdir / "feeds"
    feeds.mkdir(exist_ok=True)
    refs = [f"SKU-{i + 1:06d}" for i in range(VARIANTS_PER_MERCHANT)]
    out = []
    with rt.db.session() as session:
        for n in range(count):
            secret = new_secret()
            feed = feeds / f"{tag}-{n}.csv"  # one feed per merchant: a feed URL names one store
            feed.write_text("id\n", encoding="utf-8")
            merchant = create_merchant(
                session,
                rt.secrets,
                kind="feed",
                name=f"scale-{tag}-{n}",
                config={"url": str(feed)},
                credentials={"webhook_secret": secret},
            )
            session.flush()
            out.append((merchant.id, secret, refs))
    with rt.db.engine.begin() as conn:
        for mid, _, _ in out:
            product_id = conn.execute(
                insert(Product).returning(Product.id),
                {"merchant_id": mid, "external_id": "P-1", "title": "p", "content_hash": ""},
            ).scalar_one()
            conn.execute(
                insert(Variant),
                [
                    {
                        "merchant_id": mid,
                        "product_id": product_id,
                        "external_id": ref,
                        "title": ref,
                        "sku": ref,
                        "price_minor": 1000,
                        "currency": "USD",
                        "content_hash": "",
                    }
                    for ref in refs
                ],
            )
    return out


def _statuses(rt: Any, merchant_ids: list[int]) -> dict[str, int]:
    from connector.infra.models import InboundEvent

    with rt.db.session() as session:
        rows = session.execute(
            select(InboundEvent.status, func.count())
            .where(InboundEvent.merchant_id.in_(merchant_ids))
            .group_by(InboundEvent.status)
        )
        return {status: n for status, n in rows}


def _drain(stack: Stack, rt: Any, merchant_ids: list[int], name: str) -> dict[str, Any]:
    """Two workers, started and idle, drain what is pending for `merchant_ids`: timed from waking the
    merchants (as the receiver does) to the last delivery processed, so worker start-up is not counted."""
    from rq import Queue

    from webhooks.inbound import scheduling

    pending = _statuses(rt, merchant_ids).get("pending", 0)
    Queue(scheduling.DEFAULT_QUEUE, connection=rt.redis).empty()  # the receiver's wake-ups; sent again below
    rt.redis.delete(*[scheduling.flag_key(mid) for mid in merchant_ids])
    for n in range(2):
        stack.start(f"{name}-{n}", worker_argv(scheduling.DEFAULT_QUEUE))
    try:
        wait_for_workers(rt.redis, 2)
        started = time.perf_counter()
        for mid in merchant_ids:
            scheduling.signal(rt.redis, mid, ttl=rt.settings.worker_lock_seconds)
        deadline = time.monotonic() + 1800
        while _statuses(rt, merchant_ids).get("pending", 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        stack.stop()
    statuses = _statuses(rt, merchant_ids)
    return {"pending": pending, "left": statuses.get("pending", 0), "seconds": seconds, "statuses": statuses}


def intake_run(
    stack: Stack,
    rt: Any,
    shops: list[tuple[int, str, list[str]]],
    *,
    seconds: float,
    count: int,
) -> dict[str, Any]:
    """Flood the receiver with deliveries spread evenly over `shops`, then drain them."""
    port = free_port()
    tag = f"m{len(shops)}_{int(time.time() * 1000)}"
    start_gunicorn(stack, f"web-{tag}", "connector.app:create_app()", port)
    spec = {"merchants": shops, "count": count, "port": port, "tag": tag}
    try:
        result = flood(functools.partial(build_requests, spec), port, seconds=seconds, warmup=0.5)
    finally:
        stack.stop()
    drained = _drain(stack, rt, [mid for mid, _, _ in shops], f"drain-{tag}")
    processed = drained["pending"] - drained["left"]
    return {
        "merchants": len(shops),
        "accepted": result.ok,
        "refused": result.failed,
        "accepted_per_s": result.rate,
        "accept_p99_ms": percentile(result.latencies_ms, 99),
        "stored": drained["pending"],
        "processed": processed,
        "processed_per_s": processed / drained["seconds"],
        "drain_seconds": drained["seconds"],
        "statuses": drained["statuses"],
    }


def intake(
    stack: Stack,
    rt: Any,
    workdir: Path,
    *,
    merchants: int,
    seconds: float,
    count: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """One merchant, then `merchants` merchants, under the same flood; ratios of the two."""
    say(f"setting up 1 + {merchants:,} feed merchants with signed pushes…")
    one = make_merchants(rt, workdir, 1, "one")
    many = make_merchants(rt, workdir, merchants, "many")
    say("webhook intake, one merchant…")
    single = intake_run(stack, rt, one, seconds=seconds, count=count)
    say(f"webhook intake, {merchants:,} merchants…")
    spread = intake_run(stack, rt, many, seconds=seconds, count=count)
    accept_ratio = spread["accepted_per_s"] / single["accepted_per_s"] if single["accepted_per_s"] else 0.0
    process_ratio = (
        spread["processed_per_s"] / single["processed_per_s"] if single["processed_per_s"] else 0.0
    )
    return {
        "one": single,
        "many": spread,
        "accept_ratio": accept_ratio,
        "process_ratio": process_ratio,
        "ratio": min(accept_ratio, process_ratio),
        "merchant_id": one[0][0],
    }
