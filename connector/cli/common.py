"""Shared by every command: the per-invocation Context, output (console, tables, JSON rows), error
translation and the resolution of the Redis a command uses."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from config.settings import Settings, SettingsError, load_settings
from connector.domain.errors import StorelinkError
from connector.infra import migrate, preflight, runtime

logger = logging.getLogger(__name__)

PIPE_WIDTH = 100_000
"""Columns of output that goes to a pipe or a file: wide enough that no line wraps and no cell is cut."""


class _Output(Console):
    """A console the width of the terminal it writes to; elsewhere (a pipe, a file) never wrapping or cutting,
    so that a table's rows stay one line each and URLs stay whole for grep and scripts."""

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = Console.size.fget(self)  # type: ignore[attr-defined]
        return dimensions if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _Output(stderr=False)
err = _Output(stderr=True)

TERMINAL = ("succeeded", "failed")


class Context:
    """Lazily resolved settings and runtime for one CLI invocation."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._rt: runtime.Runtime | None = None
        self._stack = contextlib.ExitStack()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def rt(self) -> runtime.Runtime:
        if self._rt is None:
            with _startup_errors():
                if self.settings.redis_url:
                    preflight.check_redis(self.settings.redis_url)
                url = resolve_cli_redis(self.settings, self._stack)
                self._rt = runtime.install(runtime.Runtime(settings=self.settings, redis_url=url))
                with preflight.database_errors(self._rt.db.engine):
                    migrate.upgrade(self._rt.db.engine)
        return self._rt

    def close(self) -> None:
        if self._rt is not None:
            self._rt.close()
        self._stack.close()


def run_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / "redis.url"


def resolve_cli_redis(settings: Settings, stack: contextlib.ExitStack) -> str:
    """REDIS_URL; else the private Redis of a running `storelink up`; else a private one for this command.

    Work recorded by a command that had to start its own Redis is not lost when that Redis stops: the
    database holds it and the scheduler's sweep enqueues it again once `storelink up` runs.
    """
    if settings.redis_url:
        return settings.redis_url
    from redis import Redis

    path = run_file(settings)
    if path.exists():
        url = path.read_text().strip()
        with contextlib.suppress(Exception):
            Redis.from_url(url, socket_connect_timeout=0.5).ping()
            return url
    from connector.infra.embedded_redis import EmbeddedRedis

    private = Path(tempfile.mkdtemp(prefix="storelink-redis-"))
    stack.callback(shutil.rmtree, private, ignore_errors=True)
    server = EmbeddedRedis(private)
    url = server.start()
    stack.callback(server.stop)
    return url


pass_ctx = click.make_pass_decorator(Context)


@contextlib.contextmanager
def _startup_errors() -> Iterator[None]:
    """A command that cannot start (port, lock, database, Redis) exits with the one-line cause."""
    from connector.infra.embedded_redis import EmbeddedRedisError

    try:
        yield
    except (preflight.StartupError, EmbeddedRedisError) as exc:
        raise click.ClickException(str(exc)) from None


def _print_rows(
    rows: list[dict[str, Any]], as_json: bool, columns: list[tuple[str, str]], empty: str = "nothing to list"
) -> None:
    """Rows as one JSON array (`--json`) or as a table of the given (header, key) columns; no rows, `empty`."""
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        console.print(empty, highlight=False)
        return
    table = Table(*(header for header, _ in columns))
    for row in rows:
        table.add_row(*(_cell(row[key]) for _, key in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn Storelink's typed errors into clean CLI errors (exit 1, one line, no traceback)."""
    try:
        yield
    except StorelinkError as exc:
        raise click.ClickException(f"{exc.message} [{exc.code}]") from None
