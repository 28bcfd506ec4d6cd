"""`storelink up` runs the general job workers and the workers of the webhooks queue."""

from __future__ import annotations

from connector.supervisor import worker_processes


def test_up_runs_general_workers_and_a_webhooks_worker() -> None:
    processes = worker_processes(2, python="py")
    assert processes == [
        ("worker.1", ["py", "-m", "connector.cli", "worker"]),
        ("worker.2", ["py", "-m", "connector.cli", "worker"]),
        ("webhooks.1", ["py", "-m", "connector.cli", "worker", "--queues", "webhooks"]),
    ]
    assert [name for name, _ in worker_processes(1, webhook_workers=0)] == ["worker.1"]
