"""A benchmark that cannot run says why in one line: a `--database-url` that is not a reachable PostgreSQL
database is refused before anything starts (exit 2), a spawned bench process's error comes back as its type and
message, and a bench stopping short of its figures ends with that line and exit 1, never a traceback. Rounds
repeated under one name start from an empty database again (SQLite files included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.bench import feed_sync
from connector.bench.databases import drop_fresh, fresh_url
from connector.bench.errors import BenchError
from connector.bench.processes import in_process
from connector.bench.scale_sync import sync_curve
from connector.cli import main


def failing_target(rows: int, queue: object) -> None:
    """A spawned bench process that fails (imported by name in the child)."""
    raise ValueError(f"{rows} rows are not enough")


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        (
            "postgresql://nobody@127.0.0.1:1/test",
            "cannot use the database at --database-url (postgresql://nobody@127.0.0.1:1/test): connection failed",
        ),
        ("mysql://nobody@127.0.0.1/test", "benches run on PostgreSQL here, not mysql"),
        ("no url at all", "'no url at all' is not a database URL"),
    ],
)
def test_a_database_url_that_cannot_serve_is_refused_in_one_line_before_the_bench_starts(
    url: str, cause: str
) -> None:
    result = CliRunner().invoke(main, ["bench", "feed-sync", "--rows", "100", "--database-url", url])

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--database-url'" in result.output and cause in result.output
    assert "Traceback" not in result.output and "full sync" not in result.output


def test_a_spawned_bench_process_that_fails_comes_back_as_one_line() -> None:
    with pytest.raises(BenchError) as raised:
        in_process(failing_target, 3)

    assert str(raised.value) == "failing_target failed: ValueError: 3 rows are not enough"


def test_a_bench_stopping_short_of_its_figures_ends_with_its_reason_and_exit_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def stops(**_: object) -> None:
        raise BenchError("orders not pushed within 600 s: {'accepted': 3}")

    monkeypatch.setattr(feed_sync, "run", stops)
    result = CliRunner().invoke(main, ["bench", "feed-sync", "--rows", "100"])

    assert result.exit_code == 1
    assert result.output.strip() == "Error: orders not pushed within 600 s: {'accepted': 3}"


def test_rounds_under_one_name_each_sync_into_an_empty_sqlite_file(tmp_path: Path) -> None:
    curve = sync_curve(None, tmp_path, (200, 400), lambda _: None, rounds=2)

    assert [(p["variants"], p["rows"], p["created"]) for p in curve] == [(200, 200, 200), (400, 400, 400)]
    url = fresh_url(None, tmp_path, "again")
    Path(url.removeprefix("sqlite:///")).write_bytes(b"left over")
    drop_fresh(None, url)
    assert list(tmp_path.glob("again*")) == []
