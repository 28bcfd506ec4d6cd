"""End to end: a step of `storelink demo` that fails ends the demo with exit code 1 and one line naming the step
and the cause (no traceback), and stops everything it started: `storelink up` and its processes, the private
Redis, the emulators. Run in-process (the CLI as click invokes it), so that a store emulator can be told to
refuse; `storelink up` still runs as the demo's child process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import main
from connector.demo import services
from connector.infra import runtime
from connector.sandbox.walmart import ApiFault
from tests.e2e.test_demo import left_behind

pytestmark = pytest.mark.slow

_START = "start Redis, the database, the store emulators and storelink up"
SMALL = ("--shopify-products", "10", "--walmart-items", "5", "--feed-products", "5", "--buyers", "5")


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Path, CliRunner]]:
    for name in services.setting_names():
        monkeypatch.delenv(name, raising=False)
    yield tmp_path / "demo", CliRunner()
    runtime._current = None


def _run(cli: CliRunner, data_dir: Path, *args: str) -> Result:
    return cli.invoke(main, ["demo", "--no-serve", "--data-dir", str(data_dir), *SMALL, *args])


def _failed_at(result: Result, step: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: step '{step}' failed: "), result.output
    return last


def test_a_store_refusing_the_keys_fails_its_step_and_stops_everything(demo, monkeypatch) -> None:
    data_dir, cli = demo
    seed = services.seed_emulators

    def refusing(emulators: services.Emulators, sizes: services.Sizes) -> None:
        seed(emulators, sizes)
        emulators.walmart.emulator.faults.plan(*[ApiFault(status=401)] * 20, endpoints=["token"])

    monkeypatch.setattr(services, "seed_emulators", refusing)

    last = _failed_at(_run(cli, data_dir), "connect the Walmart seller with its keys")

    assert "POST /v1/merchants/walmart answered" in last
    assert left_behind(data_dir) == []
    assert (data_dir / "demo" / "logs" / "demo.log").read_text()  # the traceback went there


def test_a_web_port_in_use_fails_the_start_with_storelink_ups_reason(demo) -> None:
    data_dir, cli = demo
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        last = _failed_at(_run(cli, data_dir, "--port", str(port)), _START)

    assert f"storelink up exited with code 1: port {port} on 127.0.0.1 is already in use" in last
    assert left_behind(data_dir) == []


def test_a_data_directory_that_holds_a_database_is_refused_before_anything_starts(demo) -> None:
    data_dir, cli = demo
    data_dir.mkdir()
    (data_dir / "storelink.db").write_bytes(b"")

    last = _failed_at(_run(cli, data_dir), _START)

    assert "already holds a database" in last
    assert not (data_dir / "redis").exists()
