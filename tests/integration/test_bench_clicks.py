"""The clicks benchmark's core at a tiny size: gunicorn, visitors in processes of their own, the bare
baseline, and the flushed clicks equal to the deduplicated count."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from connector.bench import clicks
from connector.infra import runtime
from tests.helpers import SQLITE_ONLY


@pytest.mark.slow
@pytest.mark.xdist_group("benchmarks")  # one at a time: each runs servers and load processes
@SQLITE_ONLY  # the benchmark, end to end, on one backend (each takes half a minute)
def test_a_tiny_click_run_records_exactly_the_deduplicated_clicks(
    rt: runtime.Runtime, tmp_path: Path
) -> None:
    settings = rt.settings
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEYS": settings.secret_keys.get_secret_value(),
        "LOG_LEVEL": "WARNING",
        "WEB_WORKERS": "2",
    }
    logdir = tmp_path / "logs"
    logdir.mkdir()

    result = clicks.measure(
        rt, env, logdir, requests_count=400, links=5, rounds=3, processes=1, concurrency=4
    )

    assert result.ours.statuses == {302: 400}
    assert len(result.bare_runs) == 3
    assert (
        sum(run.statuses.get(302, 0) for run in result.bare_runs)
        == 400
        == sum(run.sent for run in result.bare_runs)
    )
    # 90 of 100 requests are people's; the rest (bots, prefetches, HEAD) are redirected but not counted
    assert 0 < result.expected < 360
    assert result.recorded == result.expected
    figures = clicks.report(result, backend="test", console=clicks.Console(file=io.StringIO()))
    assert figures["recorded_clicks"] == figures["expected_clicks"] == result.expected
    assert figures["targets"]["ratio"] == 0.7 and figures["p99_ms"] > 0
