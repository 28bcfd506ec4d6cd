"""`storelink up` runs the general job workers and the workers of the webhooks queue."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from connector.supervisor import worker_processes
from tests.helpers import wait_for


def test_up_runs_general_workers_and_a_webhooks_worker() -> None:
    processes = worker_processes(2, python="py")
    assert processes == [
        ("worker.1", ["py", "-m", "connector.cli", "worker"]),
        ("worker.2", ["py", "-m", "connector.cli", "worker"]),
        ("webhooks.1", ["py", "-m", "connector.cli", "worker", "--queues", "webhooks"]),
    ]
    assert [name for name, _ in worker_processes(1, webhook_workers=0)] == ["worker.1"]


# A child that counts its runs in a file, exits at once (status 3) on the runs listed in FAIL_RUNS, and
# otherwise stays up until stopped.
CHILD = """
import pathlib, sys, time
counter = pathlib.Path(sys.argv[1])
run = int(counter.read_text() or 0) + 1 if counter.exists() else 1
counter.write_text(str(run))
if run in {fail_runs}:
    sys.exit(3)
time.sleep(float(sys.argv[2]))
"""

# `storelink up`'s supervisor with its pauses and thresholds shortened, running one child.
DRIVER = """
import sys
from connector import supervisor
from connector.infra import logs
logs.configure("INFO", json_output=True)
supervisor.HEALTHY_AFTER, supervisor.BACKOFF_BASE, supervisor.BACKOFF_MAX = 1.0, 0.05, 0.4
sup = supervisor.Supervisor(env={{}})
sup.add("child", [sys.executable, "-c", {child!r}, sys.argv[1], sys.argv[2]])
sys.exit(sup.run())
"""


def _supervise(tmp_path: Path, fail_runs: set[int], up_for: float) -> subprocess.Popen[str]:
    driver = DRIVER.format(child=CHILD.format(fail_runs=fail_runs))
    return subprocess.Popen(
        [sys.executable, "-c", driver, str(tmp_path / "runs"), str(up_for)],
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return int(path.read_text() or 0) if path.exists() else 0


def test_a_process_failing_after_it_was_up_is_restarted_with_growing_pauses_and_never_given_up(
    tmp_path: Path,
) -> None:
    # Up for 1.5 s (healthy), then eight quick failures in a row (its dependency is away), then up again.
    proc = _supervise(tmp_path, fail_runs=set(range(2, 10)), up_for=1.5)
    try:
        wait_for(lambda: _runs(tmp_path) >= 10, 60, "the tenth run of the child")
        assert proc.poll() is None  # still supervising
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    pauses = [
        json.loads(line)["restart_in_seconds"] for line in log.splitlines() if "restart_in_seconds" in line
    ]
    assert len(pauses) >= 9
    assert pauses[1:9] == sorted(pauses[1:9]) and pauses[8] > pauses[1]  # backing off
    assert max(pauses) <= 0.4


def test_a_process_that_never_stays_up_is_given_up_on(tmp_path: Path) -> None:
    proc = _supervise(tmp_path, fail_runs=set(range(1, 100)), up_for=0)
    try:
        _, log = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "never stayed up" in log
    assert _runs(tmp_path) == 6


def test_the_fork_server_ignores_the_signals_up_holds_around_a_fork() -> None:
    """`connector.infra.fork_server` keeps its own list (it imports nothing before ignoring them): it is the
    supervisor's, and importing it ignores each of them. Checked in a process of its own, since the import
    would ignore them here too."""
    check = (
        "import signal\n"
        "from connector.infra import fork_server\n"
        "from connector.supervisor import HELD_SIGNALS\n"
        "assert set(fork_server.ENDING_SIGNALS) == HELD_SIGNALS, (fork_server.ENDING_SIGNALS, HELD_SIGNALS)\n"
        "assert all(signal.getsignal(s) == signal.SIG_IGN for s in HELD_SIGNALS)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
