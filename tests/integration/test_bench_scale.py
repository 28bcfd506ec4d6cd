"""`storelink bench scale --quick` end to end through the CLI: the curve, the spread, the fan-out and the
fairness run, with a last JSON line whose counts are whole and whose ratios are the printed figures'."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result

from connector.bench.scale import TARGETS, Sizes
from tests.fixtures import Runner


def _run(runner: Runner, database_url: str) -> tuple[Result, dict[str, Any]]:
    args = ["bench", "scale", "--quick"]
    if not database_url.startswith("sqlite"):
        args += ["--database-url", database_url]  # the bench works in a fresh schema of its own there
    result = runner(*args)
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return result, figures


@pytest.mark.slow
@pytest.mark.xdist_group("benchmarks")  # one at a time: each runs servers and load processes
@pytest.mark.parametrize(
    "database_url", ["postgresql"], indirect=True
)  # the bench's database (about a minute)
def test_the_quick_scale_bench_prints_the_curve_and_consistent_figures(
    runner: Runner, database_url: str
) -> None:
    result, figures = _run(runner, database_url)
    sizes = Sizes.quick()

    assert "µs per variant" in result.output and "order confirmed p99 ms" in result.output
    curve = figures["curve"]
    assert [p["variants"] for p in curve] == list(sizes.sync_variants)
    assert all(p["rows"] == p["created"] == p["variants"] for p in curve)
    assert figures["per_variant_ratio_1m_vs_10k"] == pytest.approx(
        curve[-1]["us_per_variant"] / curve[0]["us_per_variant"], rel=0.01
    )
    assert figures["peak_rss_mb"] == round(max(p["peak_rss_mb"] for p in curve))
    assert 30 < figures["peak_rss_mb"] < 1000

    one, many = figures["intake"]["one"], figures["intake"]["many"]
    assert (one["merchants"], many["merchants"]) == (1, sizes.merchants)
    assert one["processed"] == one["stored"] >= one["accepted"] > 0
    assert many["processed"] == many["stored"] >= many["accepted"] > 0
    accept = many["accepted_per_s"] / one["accepted_per_s"]
    process = many["processed_per_s"] / one["processed_per_s"]
    assert figures["merchants_1000_ratio"] == pytest.approx(min(accept, process), rel=0.02)

    fan_one, fan_many = figures["fanout"]["one"], figures["fanout"]["many"]
    assert (fan_one["endpoints"], fan_one["events"]) == (1, sizes.deliveries)
    assert (fan_many["endpoints"], fan_many["events"]) == (
        sizes.endpoints,
        sizes.deliveries // sizes.endpoints,
    )
    assert fan_one["delivered"] == fan_one["deliveries"] == fan_many["delivered"] == fan_many["deliveries"]
    assert figures["fanout_100_cpu_ratio"] == pytest.approx(
        fan_many["cpu_ms_per_delivery"] / fan_one["cpu_ms_per_delivery"], rel=0.01
    )

    fair = figures["fairness"]
    assert fair["resync_status"] == "succeeded" and fair["resync_variants"] == sizes.resync_variants
    assert fair["confirmed"] == fair["orders"] >= 3
    assert fair["baseline_confirmed"] == fair["baseline_orders"] == sizes.baseline_orders
    assert 0 < figures["fairness_p99_ms"] < 60_000 and 0 < figures["baseline_p99_ms"] < 60_000

    assert figures["targets"] == TARGETS and isinstance(figures["meets_targets"], bool)
