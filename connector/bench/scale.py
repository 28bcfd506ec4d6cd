"""Benchmark `scale`: how Storelink's cost grows with the work, printed as a curve and checked against targets.

(a) Full sync of generated feeds of growing size (10k, 100k, 1M variants): time per variant at the largest
    against the smallest, and the sync process's peak RSS (`connector.bench.scale_sync`).
(b) Signed webhook intake spread over 1,000 merchants against one merchant under the same flood
    (`connector.bench.scale_intake`).
(c) Outbound fan-out of the same deliveries to 100 endpoints against one: CPU per delivery
    (`connector.bench.scale_fanout`).
(d) Fairness: another merchant's orders confirmed in the store while a 100k-variant resync runs, p99, against
    the same orders with idle workers as the baseline (`connector.bench.scale_fairness`).

`quick` shrinks every size so that the whole run takes seconds (for tests); its figures are not the targets'.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.bench.processes import Stack, service_environment
from connector.bench.scale_fairness import fairness
from connector.bench.scale_fanout import fanout
from connector.bench.scale_intake import intake
from connector.bench.scale_sync import sync_curve

logger = logging.getLogger(__name__)

TARGETS = {
    "per_variant_ratio_1m_vs_10k": 1.25,  # at most
    "peak_rss_mb": 300,  # under
    "merchants_1000_ratio": 0.8,  # at least
    "fanout_100_cpu_ratio": 1.5,  # at most
    "fairness_p99_ms": 2000,  # under
}


@dataclass(frozen=True, slots=True)
class Sizes:
    """What one run measures; `full()` is the bench's, `quick()` a small one for tests."""

    sync_variants: tuple[int, ...]
    sync_rounds: int
    merchants: int
    flood_seconds: float
    flood_requests: int
    endpoints: int
    deliveries: int
    resync_variants: int
    order_rate: float
    baseline_orders: int

    @classmethod
    def full(cls) -> Sizes:
        return cls((10_000, 100_000, 1_000_000), 3, 1000, 5.0, 20_000, 100, 2_000, 100_000, 5.0, 30)

    @classmethod
    def quick(cls) -> Sizes:
        return cls((500, 2_000), 1, 20, 1.0, 2_000, 10, 100, 1_000, 10.0, 5)


def run(
    *, database_url: str | None, console: Console, quick: bool = False, only: str = "all"
) -> dict[str, Any]:
    """Measure every part (`only="all"`) or the webhook intake alone (`only="intake"`)."""
    sizes = Sizes.quick() if quick else Sizes.full()
    began = time.perf_counter()

    def say(text: str) -> None:
        console.print(f"[{time.perf_counter() - began:6.1f} s] {text}", highlight=False)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulators' access lines
    backend = "PostgreSQL" if database_url else "SQLite"
    with tempfile.TemporaryDirectory(prefix="storelink-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "logs").mkdir()
        if only == "all":
            curve = sync_curve(database_url, workdir, sizes.sync_variants, say, sizes.sync_rounds)
        with service_environment(
            database_url,
            workdir,
            "scale",
            env={"WEBHOOK_ALLOW_PRIVATE_URLS": "true", "FEED_ALLOW_FILES": "true", "LOG_LEVEL": "WARNING"},
            settings={"webhook_allow_private_urls": True, "feed_allow_files": True},
        ) as (env, rt, _url):
            stack = Stack(env, workdir / "logs")
            try:
                spread = intake(
                    stack,
                    rt,
                    workdir,
                    merchants=sizes.merchants,
                    seconds=sizes.flood_seconds,
                    count=sizes.flood_requests,
                    say=say,
                )
                if only == "intake":
                    report_intake(console, backend, spread)
                    return intake_figures(backend, quick, spread)
                fan = fanout(
                    rt,
                    spread["merchant_id"],
                    endpoints=sizes.endpoints,
                    deliveries=sizes.deliveries,
                    say=say,
                )
                fair = fairness(
                    stack,
                    rt,
                    workdir,
                    variants=sizes.resync_variants,
                    rate=sizes.order_rate,
                    baseline_orders=sizes.baseline_orders,
                    say=say,
                )
            finally:
                stack.stop()
    report(console, backend, curve, spread, fan, fair)
    return figures(backend, quick, curve, spread, fan, fair)


def figures(
    backend: str,
    quick: bool,
    curve: list[dict[str, Any]],
    spread: dict[str, Any],
    fan: dict[str, Any],
    fair: dict[str, Any],
) -> dict[str, Any]:
    """The JSON line: each figure is computed from the printed ones."""
    small, large = curve[0], curve[-1]
    points = [
        {
            "variants": p["variants"],
            "rows": p["rows"],
            "created": p["created"],
            "seconds": round(p["seconds"], 3),
            "us_per_variant": round(p["us_per_variant"], 2),
            "peak_rss_mb": round(p["peak_rss_mb"], 1),
        }
        for p in curve
    ]
    result = {
        "bench": "scale",
        "database": backend.lower(),
        "quick": quick,
        "per_variant_ratio_1m_vs_10k": round(large["us_per_variant"] / small["us_per_variant"], 3),
        "peak_rss_mb": round(max(p["peak_rss_mb"] for p in points)),  # of the points as printed
        "merchants_1000_ratio": round(spread["ratio"], 3),
        "fanout_100_cpu_ratio": round(fan["ratio"], 3),
        "fairness_p99_ms": round(fair["during"]["p99_ms"], 1),
        "baseline_p99_ms": round(fair["baseline"]["p99_ms"], 1),
        "curve": points,
        **_intake_part(spread),
        "fanout": {
            key: {
                "endpoints": fan[key]["endpoints"],
                "events": fan[key]["events"],
                "deliveries": fan[key]["deliveries"],
                "delivered": fan[key]["delivered"],
                "cpu_ms_per_delivery": round(fan[key]["cpu_ms_per_delivery"], 4),
            }
            for key in ("one", "many")
        },
        "fairness": {
            "resync_variants": fair["variants"],
            "resync_status": fair["during"]["resync_status"],
            "resync_seconds": round(fair["during"]["resync_seconds"], 2),
            "orders": fair["during"]["orders"],
            "confirmed": fair["during"]["confirmed"],
            "baseline_orders": fair["baseline"]["orders"],
            "baseline_confirmed": fair["baseline"]["confirmed"],
            "order_rate_per_s": fair["rate"],
        },
        "targets": dict(TARGETS),
    }
    result["meets_targets"] = meets(result)
    return result


def _intake_part(spread: dict[str, Any]) -> dict[str, Any]:
    return {
        "intake": {
            key: {
                "merchants": spread[key]["merchants"],
                "accepted": spread[key]["accepted"],
                "accepted_per_s": round(spread[key]["accepted_per_s"], 1),
                "stored": spread[key]["stored"],
                "processed": spread[key]["processed"],
                "processed_per_s": round(spread[key]["processed_per_s"], 1),
                "drain_seconds": round(spread[key]["drain_seconds"], 3),
            }
            for key in ("one", "many")
        },
        "intake_accept_ratio": round(spread["accept_ratio"], 3),
        "intake_process_ratio": round(spread["process_ratio"], 3),
    }


def intake_figures(backend: str, quick: bool, spread: dict[str, Any]) -> dict[str, Any]:
    """The JSON line of `--only intake`: the intake figures, met when every delivery was processed and the
    ratio reaches its target."""
    result = {
        "bench": "scale",
        "only": "intake",
        "database": backend.lower(),
        "quick": quick,
        "merchants_1000_ratio": round(spread["ratio"], 3),
        **_intake_part(spread),
        "targets": {"merchants_1000_ratio": TARGETS["merchants_1000_ratio"]},
    }
    whole = all(i["processed"] == i["stored"] for i in result["intake"].values())
    result["meets_targets"] = whole and result["merchants_1000_ratio"] >= TARGETS["merchants_1000_ratio"]
    return result


def meets(result: dict[str, Any]) -> bool:
    """Every target met, every count whole (all rows synced, every delivery and order done)."""
    t = result["targets"]
    whole = (
        all(p["rows"] == p["variants"] == p["created"] for p in result["curve"])
        and all(f["delivered"] == f["deliveries"] for f in result["fanout"].values())
        and all(i["processed"] == i["stored"] for i in result["intake"].values())
        and result["fairness"]["confirmed"] == result["fairness"]["orders"]
        and result["fairness"]["baseline_confirmed"] == result["fairness"]["baseline_orders"]
    )
    return bool(
        whole
        and result["per_variant_ratio_1m_vs_10k"] <= t["per_variant_ratio_1m_vs_10k"]
        and result["peak_rss_mb"] < t["peak_rss_mb"]
        and result["merchants_1000_ratio"] >= t["merchants_1000_ratio"]
        and result["fanout_100_cpu_ratio"] <= t["fanout_100_cpu_ratio"]
        and result["fairness_p99_ms"] < t["fairness_p99_ms"]
    )


def chart(curve: list[dict[str, Any]], width: int = 40) -> list[str]:
    """A bar per size: time per variant, scaled to the largest."""
    top = max(p["us_per_variant"] for p in curve) or 1.0
    return [
        f"{p['variants']:>10,} │{'█' * max(1, round(width * p['us_per_variant'] / top)):<{width}} "
        f"{p['us_per_variant']:.1f} µs/variant, {p['peak_rss_mb']:.0f} MB"
        for p in curve
    ]


def _intake_rows(table: Table, spread: dict[str, Any]) -> None:
    one, many = spread["one"], spread["many"]
    table.add_row(
        f"webhooks accepted/s: 1 vs {many['merchants']:,} merchants",
        f"{one['accepted_per_s']:,.0f}",
        f"{many['accepted_per_s']:,.0f}",
        f"{spread['accept_ratio']:.2f}",
        f">= {TARGETS['merchants_1000_ratio']}",
    )
    table.add_row(
        f"webhooks processed/s: 1 vs {many['merchants']:,} merchants",
        f"{one['processed_per_s']:,.0f}",
        f"{many['processed_per_s']:,.0f}",
        f"{spread['process_ratio']:.2f}",
        f">= {TARGETS['merchants_1000_ratio']}",
    )


def _table(backend: str) -> Table:
    table = Table(title=f"scale ({backend}): spread, fan-out and fairness")
    for col in ("measure", "reference", "scaled", "ratio", "target"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    return table


def report_intake(console: Console, backend: str, spread: dict[str, Any]) -> None:
    """The intake comparison alone (`--only intake`)."""
    table = _table(backend)
    _intake_rows(table, spread)
    console.print(table)
    one, many = spread["one"], spread["many"]
    console.print(
        f"intake: {one['accepted']:,} / {many['accepted']:,} accepted, {one['processed']:,} / "
        f"{many['processed']:,} processed, drained in {one['drain_seconds']:.2f} / "
        f"{many['drain_seconds']:.2f} s.",
        highlight=False,
    )


def report(
    console: Console,
    backend: str,
    curve: list[dict[str, Any]],
    spread: dict[str, Any],
    fan: dict[str, Any],
    fair: dict[str, Any],
) -> None:
    """The curve, the three comparisons against their references, and the chart."""
    table = Table(title=f"scale ({backend}): full sync as the catalog grows")
    for col in ("variants", "seconds", "µs per variant", "vs smallest", "events", "peak RSS MB"):
        table.add_column(col, justify="right")
    for p in curve:
        table.add_row(
            f"{p['variants']:,}",
            f"{p['seconds']:.2f}",
            f"{p['us_per_variant']:.1f}",
            f"{p['us_per_variant'] / curve[0]['us_per_variant']:.2f}",
            f"{p['events']:,}",
            f"{p['peak_rss_mb']:.0f}",
        )
    console.print(table)
    for line in chart(curve):
        console.print(line, highlight=False)
    one, many = spread["one"], spread["many"]
    fo, fm = fan["one"], fan["many"]
    base, during = fair["baseline"], fair["during"]
    table = _table(backend)
    _intake_rows(table, spread)
    table.add_row(
        f"CPU ms per delivery: 1 vs {fm['endpoints']} endpoints",
        f"{fo['cpu_ms_per_delivery']:.3f}",
        f"{fm['cpu_ms_per_delivery']:.3f}",
        f"{fan['ratio']:.2f}",
        f"<= {TARGETS['fanout_100_cpu_ratio']}",
    )
    table.add_row(
        f"order confirmed p99 ms: idle vs {fair['variants']:,}-variant resync",
        f"{base['p99_ms']:.0f}",
        f"{during['p99_ms']:.0f}",
        "",
        f"< {TARGETS['fairness_p99_ms']}",
    )
    console.print(table)
    console.print(
        f"intake: {one['accepted']:,} / {many['accepted']:,} accepted, {one['processed']:,} / "
        f"{many['processed']:,} processed. fan-out: {fo['delivered']:,} / {fm['delivered']:,} delivered "
        f"({fo['events']:,} / {fm['events']:,} events). fairness: {base['orders']} orders idle "
        f"(p50 {base['p50_ms']:.0f} ms), {during['orders']} during the resync (p50 {during['p50_ms']:.0f} ms, "
        f"max {during['max_ms']:.0f} ms), which took {during['resync_seconds']:.1f} s "
        f"({during['resync_status']}); workers on {fair['queues']}.",
        highlight=False,
    )
