"""End to end: `storelink demo --no-serve` at small sizes, as a newcomer runs it: the installed `storelink`
script, run from outside the source tree, with none of Storelink's settings in its environment (no REDIS_URL,
no DATABASE_URL) and a HOME of its own, in a fresh data directory. Its last line is checked against the SQLite
database it left there, and nothing it started may outlive it.

The interpreter running the tests stands in for the README's fresh virtualenv: CI (`.ci/run`) makes a new
virtualenv and installs the package into it (`pip install '.[test]'`), and this test runs that environment's
`storelink` script, so what the demo imports must come with the package and its dependencies (that the base
dependencies alone cover the demo is `tests/unit/test_package_dependencies.py`). A virtualenv of its own here
would cost a wheel build and an install, for what CI's already shows."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from connector.demo.services import setting_names

pytestmark = pytest.mark.slow

SIZES = (
    "--shopify-products", "40", "--walmart-items", "20", "--feed-products", "10", "--creators", "2",
    "--buyers", "30", "--allocation", "20", "--orders", "8",
)  # fmt: skip


def newcomer_env(home: Path) -> dict[str, str]:
    """This environment without any Storelink setting, with a HOME of its own."""
    names = setting_names()
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    return {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1"}


def storelink_script() -> str:
    script = Path(sys.executable).parent / "storelink"
    assert script.exists(), f"the package's console script is not installed next to {sys.executable}"
    return str(script)


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        yield conn


def scalar(conn: sqlite3.Connection, query: str, *args: Any) -> Any:
    return conn.execute(query, args).fetchone()[0]


# Titles of the processes `storelink up` forks and of gunicorn's workers (their command line and environment
# are their fork server's).
FORKED_TITLES = ("storelink ", "rq:worker:", "gunicorn: ")


def left_behind(data_dir: Path) -> list[str]:
    """Descendants of this test process still running for the demo's data directory."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = " ".join(proc.cmdline())
            if (
                str(data_dir) in command
                or command.startswith(FORKED_TITLES)
                or proc.environ().get("DATA_DIR") == str(data_dir)
            ):
                found.append(f"{proc.pid}: {' '.join(proc.cmdline())[:120]}")
    return found


def test_the_demo_shows_every_feature_and_its_figures_are_the_databases(tmp_path: Path) -> None:
    data_dir, home = tmp_path / "demo", tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [storelink_script(), "demo", "--no-serve", "--data-dir", str(data_dir), *SIZES],
        env=newcomer_env(home),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["demo"] == "storelink"
    assert not (home / ".storelink").exists()  # never the user's data directory
    assert left_behind(data_dir) == []
    with connect(data_dir / "storelink.db") as conn:
        _catalog_and_orders(conn, figures)
        _commissions(conn, figures)
        _webhooks_and_showcases(conn, figures)


def _catalog_and_orders(conn: sqlite3.Connection, figures: dict[str, Any]) -> None:
    synced = dict(
        conn.execute(
            "SELECT m.kind, count(*) FROM products p JOIN merchants m ON m.id = p.merchant_id "
            "WHERE p.status = 'active' GROUP BY m.kind"
        ).fetchall()
    )
    assert figures["products_synced"] == synced
    assert (
        synced["shopify"] == 41 and synced["walmart"] == 20 and synced["feed"] == 10
    )  # the flash hoodie too
    statuses = dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall())
    assert figures["orders"] == {
        "accepted": sum(statuses.values()),
        "confirmed": sum(statuses.get(s, 0) for s in ("confirmed", "fulfilled", "refunded")),
        "rejected": statuses.get("rejected", 0),
    }
    assert statuses.get("fulfilled", 0) > 0 and statuses.get("refunded", 0) == 1  # the stores' webhooks
    assert scalar(conn, "SELECT count(*) FROM orders WHERE store_order_ref IS NULL") == 0
    sold = scalar(
        conn,
        "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
        "WHERE l.live_pin_id IS NOT NULL AND o.status NOT IN ('rejected', 'cancelled')",
    )
    allocation = scalar(conn, "SELECT allocation FROM live_pins")
    assert figures["live"] == {"allocation": allocation, "sold": sold}
    assert sold == allocation == 20  # 30 buyers, 2 each at most: sold out, not over
    per_buyer = conn.execute(
        "SELECT max(units) FROM (SELECT sum(l.quantity) AS units FROM order_lines l JOIN orders o "
        "ON o.id = l.order_id WHERE l.live_pin_id IS NOT NULL GROUP BY json_extract(o.buyer, '$.ref'))"
    ).fetchone()[0]
    assert per_buyer <= 2
    assert figures["oversold"] == 0
    assert scalar(conn, "SELECT count(*) FROM orders WHERE attributed_via = 'click'") > 0
    assert scalar(conn, "SELECT count(*) FROM affiliate_clicks") > 0  # the visits, flushed by the scheduler


def _commissions(conn: sqlite3.Connection, figures: dict[str, Any]) -> None:
    by_state = dict(
        conn.execute("SELECT state, sum(amount_minor) FROM commission_entries GROUP BY state").fetchall()
    )
    reversed_minor = -scalar(
        conn, "SELECT coalesce(sum(amount_minor), 0) FROM commission_entries WHERE kind = 'reversal'"
    )
    commissions = figures["commissions"]
    assert commissions == {
        "creators": scalar(conn, "SELECT count(DISTINCT creator_ref) FROM commission_entries"),
        "pending_minor": by_state.get("pending", 0),
        "approved_minor": by_state.get("approved", 0),
        "paid_minor": by_state.get("paid", 0),
        "reversed_minor": reversed_minor,
        "balanced": True,
    }
    # Every state is shown: the Walmart program's 30-day hold keeps its entries pending, the Shopify one's
    # were approved, one creator was paid, and the refund in the store reversed part of one entry.
    assert min(by_state.get(state, 0) for state in ("pending", "approved", "paid")) > 0
    assert reversed_minor > 0
    assert commissions["paid_minor"] == scalar(conn, "SELECT sum(total_minor) FROM affiliate_payouts")


def _webhooks_and_showcases(conn: sqlite3.Connection, figures: dict[str, Any]) -> None:
    deliveries = dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    assert figures["webhooks"]["delivered"] == deliveries.get("succeeded", 0) > 0
    assert figures["webhooks"]["failed"] == deliveries.get("failed", 0) == 0
    assert deliveries.get("pending", 0) == 0
    assert figures["webhooks"]["verified"] == figures["webhooks"]["delivered"]  # the receiver checked each
    assert figures["store_webhooks"]["received"] == scalar(conn, "SELECT count(*) FROM inbound_events")
    assert figures["store_webhooks"]["failed"] == 0
    assert figures["showcases"]["count"] == scalar(conn, "SELECT count(*) FROM showcases") == 2
    assert figures["showcases"]["items"] > 0
    assert figures["problems"] == 0


def test_a_signal_in_the_middle_of_the_demo_stops_everything_it_started(tmp_path: Path) -> None:
    data_dir, home = tmp_path / "demo", tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        [storelink_script(), "demo", "--no-serve", "--data-dir", str(data_dir), *SIZES],
        env=newcomer_env(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    while not any(line.startswith("✓ 2.") for line in seen) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "".join(seen)
        seen.append(line)
    started = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.is_running()]
    assert any("connector.cli" in " ".join(p.cmdline()) for p in started)  # storelink up and its processes

    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signal.SIGTERM, "".join(seen) + rest
    assert "Traceback" not in rest
    assert [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert left_behind(data_dir) == []
