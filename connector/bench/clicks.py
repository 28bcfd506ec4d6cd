"""Benchmark `clicks`: creators' link redirects (`GET /l/{code}`) under load, against a bare Flask redirect.

`links` links are made (merchants, products, an open program). Visitor processes of their own (asyncio,
`concurrency` connections each; `connector.bench.visitors`) send `requests` prepared requests to the real app
under gunicorn (`config/gunicorn.conf.py`): mostly people (each visitor always follows the same link and comes back about
`repeat` times; half are named by the platform's visitor header, half only by their browser's user agent),
and a share of bots, prefetches and HEAD requests, which must be redirected but not counted. Once the load
is over the click buffer is flushed and the recorded clicks must equal the deduplicated count exactly.

The baseline, measured in the same run with the same gunicorn settings and the same requests, is a bare Flask
app whose `/l/<code>` only answers a 302 with a Location. The two run side by side and take the requests in
rounds, each slice of the plan sent to both in turn (the machine is shared: what else it does weighs on both
alike); the figure is Storelink's redirects per second over the baseline's (target at least 0.7), with p99
latency.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import requests
from flask import Flask, Response
from rich.console import Console
from rich.table import Table

from connector.bench.load import LoadResult, percentile
from connector.bench.processes import Stack, free_port, service_environment, start_gunicorn
from connector.bench.visitors import BOT, VisitSpec, load, plan, visit_kind
from connector.infra import runtime

logger = logging.getLogger(__name__)

TARGET_RATIO: Final = 0.7
REDIRECT: Final = 302


# --- the baseline (gunicorn imports this module for it) -----------------------------------------------------


def bare_app() -> Flask:
    """The baseline: `/l/<code>` answers a 302 to a fixed product page, nothing else."""
    app = Flask("bare")

    @app.get("/l/<code>")
    def follow(code: str) -> Response:
        response = Response(status=REDIRECT)
        response.headers["Location"] = f"https://platform.example/products/1?code={code}"
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(status=200)

    return app


# --- warming up ---------------------------------------------------------------------------------------------


def warm(port: int, codes: tuple[str, ...], rounds: int = 4) -> None:
    """Requests every gunicorn worker answers before the clock starts (imports, link cache, Lua script): as a
    bot, so nothing is counted."""
    for _ in range(rounds):
        for code in codes:
            requests.get(
                f"http://127.0.0.1:{port}/l/{code}",
                headers={"User-Agent": BOT},
                allow_redirects=False,
                timeout=30,
            )


# --- set-up and the run -------------------------------------------------------------------------------------


def seed_links(rt: runtime.Runtime, count: int) -> tuple[str, ...]:
    """`count` creators' links, each to a product of its own of one merchant under an open program."""
    from connector.infra.models import AffiliateLink, AffiliateProgram, Merchant, Product

    now = datetime.now(UTC)
    with rt.db.session() as session:
        merchant = Merchant(kind="feed", store_ref="clicks-bench", name="clicks-bench", status="installed")
        session.add(merchant)
        session.flush()
        program = AffiliateProgram(merchant_id=merchant.id, kind="open", name="Open", default_rate_bps=1000)
        session.add(program)
        session.flush()
        codes = []
        for n in range(count):
            product = Product(
                merchant_id=merchant.id, external_id=f"p{n}", title=f"Product {n}", content_hash="0"
            )
            session.add(product)
            session.flush()
            code = secrets.token_urlsafe(9)
            session.add(
                AffiliateLink(
                    code=code,
                    merchant_id=merchant.id,
                    program_id=program.id,
                    creator_ref=f"creator-{n}",
                    product_id=product.id,
                    locked_rate_bps=1000,
                    locked_until=now + timedelta(days=30),
                )
            )
            codes.append(code)
    return tuple(codes)


def recorded_clicks(rt: runtime.Runtime) -> int:
    from sqlalchemy import func, select

    from connector.infra.models import AffiliateClick

    with rt.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AffiliateClick)) or 0)


@dataclass
class ClicksResult:
    requests: int
    visitors: int
    links: int
    expected: int
    recorded: int
    ours: LoadResult
    bare_runs: list[LoadResult]
    flush_seconds: float

    @property
    def bare_rate(self) -> float:
        return _merge(self.bare_runs).rate

    @property
    def ratio(self) -> float:
        return self.ours.rate / self.bare_rate if self.bare_rate else 0.0


def _merge(results: list[LoadResult]) -> LoadResult:
    """Rounds as one: their answers and latencies, and the sum of their durations."""
    merged = LoadResult(started=0.0, finished=sum(r.finished - r.started for r in results))
    for result in results:
        for status, count in result.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + count
        merged.latencies_ms.extend(result.latencies_ms)
    return merged


def measure(
    rt: runtime.Runtime,
    env: dict[str, str],
    logdir: Path,
    *,
    requests_count: int,
    links: int,
    repeat: float = 1.6,
    rounds: int = 6,
    processes: int = 2,
    concurrency: int = 16,
    console: Console | None = None,
) -> ClicksResult:
    """The benchmark's core on a prepared runtime (`env` is what its processes get). Both servers run side by
    side; the plan is sent in `rounds` slices, each to the baseline and to Storelink in turn (which goes
    first alternates), so that what else the machine does weighs on both alike."""
    from connector.affiliates import clicks

    say = console.print if console is not None else (lambda *_: None)
    codes = seed_links(rt, links)
    people = sum(1 for n in range(requests_count) if visit_kind(n) == "person")
    visitors = max(1, round(people / repeat))
    spec = VisitSpec(0, codes, requests_count, visitors, secrets.token_hex(4), concurrency)
    _, expected = plan(spec)
    stack = Stack(env, logdir)
    ours: list[LoadResult] = []
    bare: list[LoadResult] = []
    try:
        bare_port, our_port = free_port(), free_port()
        start_gunicorn(stack, "bare", "connector.bench.clicks:bare_app()", bare_port)
        start_gunicorn(stack, "web", "connector.app:create_app()", our_port)
        warm(bare_port, codes)
        warm(our_port, codes)
        say(
            f"{requests_count:,} visits by {visitors:,} visitors to {links} links, in {rounds} rounds each "
            "to a bare Flask redirect and to Storelink, through gunicorn…"
        )
        size = -(-requests_count // rounds)
        for round_no, first in enumerate(range(0, requests_count, size)):
            count = min(size, requests_count - first)
            turns = [(bare, bare_port), (ours, our_port)]
            for results, port in turns if round_no % 2 == 0 else turns[::-1]:
                results.append(load(spec.part(port, first, count), processes=processes))
    finally:
        stack.stop()  # gunicorn's workers end their requests first
    began = time.monotonic()
    while clicks.buffered(rt):
        clicks.flush(rt)
    flush_seconds = time.monotonic() - began
    return ClicksResult(
        requests_count, visitors, links, expected, recorded_clicks(rt), _merge(ours), bare, flush_seconds
    )


def report(result: ClicksResult, *, backend: str, console: Console) -> dict[str, Any]:
    """Print the table and return the figures (the command's last line)."""
    ours, bare_runs = result.ours, result.bare_runs
    bare_latencies = [lat for run in bare_runs for lat in run.latencies_ms]
    p99, bare_p99 = percentile(ours.latencies_ms, 99), percentile(bare_latencies, 99)
    table = Table(
        title=f"clicks ({backend}): {result.requests:,} visits, {result.visitors:,} visitors, {result.links} links"
    )
    for col in ("measure", "baseline", "storelink", "target"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    table.add_row("redirects/s", f"{result.bare_rate:,.0f}", f"{ours.rate:,.0f}", "")
    table.add_row("ratio to bare redirect", "", f"{result.ratio:.2f}", f">= {TARGET_RATIO}")
    table.add_row(
        "p50 / p99 ms",
        f"{percentile(bare_latencies, 50):.0f} / {bare_p99:.0f}",
        f"{percentile(ours.latencies_ms, 50):.0f} / {p99:.0f}",
        "",
    )
    other = {str(k): v for k, v in sorted(ours.statuses.items()) if k != REDIRECT}
    table.add_row(
        "302 / other", "", f"{ours.statuses.get(REDIRECT, 0):,} / {sum(other.values()):,}", "0 other"
    )
    table.add_row("clicks recorded (deduplicated)", "", f"{result.recorded:,}", f"= {result.expected:,}")
    table.add_row("buffer flushed in, s", "", f"{result.flush_seconds:.2f}", "")
    console.print(table)
    console.print(
        f"recorded {result.recorded:,} clicks, expected {result.expected:,} (distinct counted visitors)"
    )
    if other:
        console.print(f"unexpected answers: {other}")
    meets = result.recorded == result.expected and result.ratio >= TARGET_RATIO and not other
    return {
        "bench": "clicks",
        "database": backend.lower(),
        "requests": result.requests,
        "visitors": result.visitors,
        "links": result.links,
        "redirects": ours.statuses.get(REDIRECT, 0),
        "errors": sum(other.values()),
        "expected_clicks": result.expected,
        "recorded_clicks": result.recorded,
        "clicks_per_s": round(ours.rate),
        "baseline_per_s": round(result.bare_rate),
        "baseline_rounds_per_s": [round(run.rate) for run in bare_runs],
        "ratio": round(result.ratio, 3),
        "p50_ms": round(percentile(ours.latencies_ms, 50), 1),
        "p99_ms": round(p99, 1),
        "baseline_p99_ms": round(bare_p99, 1),
        "flush_seconds": round(result.flush_seconds, 2),
        "targets": {"ratio": TARGET_RATIO, "recorded_clicks": result.expected},
        "meets_targets": meets,
    }


def run(
    *,
    database_url: str | None,
    console: Console,
    requests_count: int = 20_000,
    links: int = 50,
    processes: int = 2,
    concurrency: int = 16,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="storelink-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "logs").mkdir()
        with service_environment(database_url, workdir, "clicks", env={"LOG_JSON": "true"}) as (env, rt, _):
            result = measure(
                rt,
                env,
                workdir / "logs",
                requests_count=requests_count,
                links=links,
                processes=processes,
                concurrency=concurrency,
                console=console,
            )
    return report(result, backend="PostgreSQL" if database_url else "SQLite", console=console)
