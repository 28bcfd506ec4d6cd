"""`storelink bench`: the benchmarks, each ending with one JSON line of figures and targets.

The commands and their options live beside the benchmarks they run (`connector.bench.commands`).
"""

from __future__ import annotations

from typing import Any

import click

from connector.bench.commands import COMMANDS
from connector.bench.errors import BenchError
from connector.bench.processes import bytecode_note
from connector.cli.common import _errors


class BenchGroup(click.Group):
    """A benchmark that stops short of its figures ends with one line saying why, and exit code 1 (Storelink's
    typed errors as every command ends on them)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _errors():
                return super().invoke(ctx)
        except BenchError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=BenchGroup)
def bench() -> None:
    """Benchmarks: each prints a table and, last, one JSON line with its figures and targets."""
    note = bytecode_note()
    if note is not None:
        click.echo(note, err=True)


for _command in COMMANDS:
    bench.add_command(_command)
