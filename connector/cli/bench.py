"""`storelink bench`: the benchmarks, each ending with one JSON line of figures and targets.

The commands and their options live beside the benchmarks they run (`connector.bench.commands`).
"""

from __future__ import annotations

import click

from connector.bench.commands import COMMANDS


@click.group()
def bench() -> None:
    """Benchmarks: each prints a table and, last, one JSON line with its figures and targets."""


for _command in COMMANDS:
    bench.add_command(_command)
