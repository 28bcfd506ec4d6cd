"""End to end, on hosts of the test's own (`tests.netns`, `tests.data_host`): a worker host cut off from
PostgreSQL in the middle of a transaction loses its session, and with it its row locks, within its lease
(`connector.infra.db.dead_peer_args`), so the work taken over from it can write those rows; a session opened
without those arguments keeps its locks for as long as the server's TCP defaults (hours)."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests import data_host, netns
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

LEASE = 4.0
"""The holder's dead-peer bound: keepalive probes after 1 s of silence, 1 s apart, three of them."""
SLACK = 3.0
"""What a loaded machine may add to the bound."""
LOCK_TIMEOUT = 12.0
"""How long the test waits for each row: three leases."""
HOLDER = """
import sys, time
import psycopg
from sqlalchemy import text
from connector.infra.db import make_engine
url, row = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    conn = make_engine(url, dead_peer_seconds=float(sys.argv[3])).connect()
    conn.execute(text("UPDATE held SET v = v + 1 WHERE id = :id"), {"id": row})
else:
    plain = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    plain.execute("UPDATE held SET v = v + 1 WHERE id = %s", (row,))
print("locked", flush=True)
time.sleep(600)
"""


def _lock_wait(url: str, row: int) -> float | None:
    """Seconds until this connection takes `row`'s lock; None when it is still held after LOCK_TIMEOUT."""
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")
        try:
            conn.execute("UPDATE held SET v = v + 1 WHERE id = %s", (row,))
        except psycopg.errors.LockNotAvailable:
            return None
        return time.monotonic() - started


def _holding(log: Path) -> bool:
    return log.exists() and "locked" in log.read_text()


def test_a_session_cut_off_mid_transaction_loses_its_row_locks_within_the_lease(tmp_path: Path) -> None:
    reason = data_host.unavailable(redis=False)
    if reason:
        pytest.skip(reason)
    logs = tmp_path / "logs"
    logs.mkdir()
    with netns.Lab(("data", "worker")) as lab:
        url = data_host.start_postgres(lab, "data", logs)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE TABLE held (id int PRIMARY KEY, v int NOT NULL)")
            admin.execute("INSERT INTO held VALUES (1, 0), (2, 0)")
        engine_url = url.replace("postgresql://", "postgresql+psycopg://")
        bounded, plain = logs / "bounded.log", logs / "plain.log"
        lab.start(
            "worker",
            [sys.executable, "-c", HOLDER, engine_url, "1", str(LEASE)],
            env=dict(os.environ),
            log=bounded,
        )
        lab.start("worker", [sys.executable, "-c", HOLDER, engine_url, "2"], env=dict(os.environ), log=plain)
        wait_for(lambda: _holding(bounded) and _holding(plain), 60, "both holders' row locks")
        lab.cut("worker")
        with ThreadPoolExecutor(2) as pool:
            bounded_wait, plain_wait = pool.submit(_lock_wait, url, 1), pool.submit(_lock_wait, url, 2)
            waited = bounded_wait.result(), plain_wait.result()
        lab.restore("worker")
    print(f"row locks taken after {waited} s (bound {LEASE} s + {SLACK} s)")
    assert waited[0] is not None and waited[0] <= LEASE + SLACK, waited
    assert waited[1] is None, waited  # without the bound the cut-off session keeps its lock
