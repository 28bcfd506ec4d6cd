"""The flash-sale benchmark's core at a tiny size: gunicorn, buyers in processes of their own, real workers
pushing to the Shopify emulator; the sale ends with exactly the allocation confirmed and nothing oversold."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from connector.bench import flash_sale
from connector.infra import runtime
from tests.helpers import ON_POSTGRESQL


@pytest.mark.slow
@pytest.mark.xdist_group("benchmarks")  # one at a time: each runs servers and load processes
@ON_POSTGRESQL  # the benchmark, end to end, on one backend (each takes half a minute)
def test_a_tiny_flash_sale_sells_the_allocation_exactly(rt: runtime.Runtime, tmp_path: Path) -> None:
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

    result = flash_sale.sale(
        rt, env, logdir, buyers=10, attempts=120, allocation=20, limit=4, load_processes=1, push_timeout=120
    )

    assert result.ours.sent == 120 and [run.sent for run in result.bare_runs] == [120, 120]
    assert set(result.ours.statuses) == {201, 409}, result.ours.statuses
    assert result.accepted == 20
    assert result.tally["confirmed"] == 20 and result.tally["store_units"] == 20
    assert result.orders == {"confirmed": 20}
    assert result.oversold == 0
    assert result.tally["buyers_over_limit"] == 0
    # the baseline ran the same purchase script against its own counter, before and after: it sold 20 each time
    assert [run.statuses for run in result.bare_runs] == [{201: 20, 409: 100}] * 2
    figures = flash_sale.report(result, backend="test", console=flash_sale.Console(file=io.StringIO()))
    assert figures["confirmed"] == figures["allocation"] == 20 and figures["oversold"] == 0
