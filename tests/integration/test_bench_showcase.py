"""The showcase benchmark's core at a tiny size: gunicorn, the bare baseline, a worker applying stock
webhooks, readers in processes of their own; every read current within the stated bound."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.bench import showcase
from connector.bench.processes import Stack
from connector.infra import runtime
from tests.helpers import ON_POSTGRESQL


@pytest.mark.slow
@pytest.mark.xdist_group("benchmarks")  # one at a time: each runs servers and load processes
@ON_POSTGRESQL  # the benchmark, end to end, on one backend (each takes half a minute)
def test_a_tiny_showcase_read_run_stays_within_the_bound(rt: runtime.Runtime, tmp_path: Path) -> None:
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
    made = showcase.setup(rt, 20)
    stack = Stack(env, logdir)
    try:
        bare, ours, changer = showcase._measure(
            rt, stack, made, items=20, share=0.25, seconds=3, processes=1, concurrency=2, say=print
        )
    finally:
        stack.stop()

    assert bare and ours and all(read[2] == 200 for read in ours + bare)
    assert changer.failures == 0 and sum(len(v) for v in changer.sent.values()) >= 10
    assert showcase.stale_reads(ours, changer.sent, showcase.BOUND_S) == 0
    assert all(len(read[3]) == 20 for read in ours)
    # The check does catch a read showing a quantity older than one sent well before it.
    began = max(at for sent in changer.sent.values() for at, _ in sent) + showcase.BOUND_S + 1
    product = next(iter(changer.sent))
    old = (began, 1.0, 200, {product: showcase.FIRST_QUANTITY})
    assert showcase.stale_reads([old], changer.sent, showcase.BOUND_S) == 1
