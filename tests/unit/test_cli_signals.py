"""A command ended by a signal exits with 128 + the signal's number, even when a library wraps the interruption."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import connector.cli as cli


@pytest.fixture
def signalled_command() -> Iterator[str]:
    """A command that receives SIGUSR1 mid-call inside code that turns the SystemExit into its own error,
    as a database driver interrupted mid-query does."""

    @click.command()
    def interrupted() -> None:
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
        except SystemExit as exc:
            raise RuntimeError("connection in transaction status ACTIVE") from exc

    cli.main.add_command(interrupted, "interrupted-for-test")
    yield "interrupted-for-test"
    cli.main.commands.pop("interrupted-for-test")
    cli._ending_signal = None


def test_an_error_raised_while_a_signal_unwinds_ends_the_command_as_the_signal_asked(
    signalled_command: str,
) -> None:
    result = CliRunner().invoke(cli.main, [signalled_command])
    assert result.exit_code == 128 + signal.SIGUSR1
    assert not isinstance(result.exception, RuntimeError)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the handler was put back


def test_an_error_without_a_signal_is_not_hidden() -> None:
    @click.command()
    def broken() -> None:
        raise RuntimeError("a real fault")

    cli.main.add_command(broken, "broken-for-test")
    try:
        result = CliRunner().invoke(cli.main, ["broken-for-test"])
    finally:
        cli.main.commands.pop("broken-for-test")
    assert isinstance(result.exception, RuntimeError)
