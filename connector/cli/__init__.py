"""CLI composition root: `storelink` commands for running, operating and supporting the service.

`main` is the command group; each module of this package holds one area's commands (`processes`: up, worker,
scheduler, and the hidden web and front that `up` runs; `demo`; `sandbox`; `db`: db and keys; `merchants`;
`resync`; `problems`; `jobs`; `clients`; `webhooks`: webhooks, deliveries and replay; `inbound`; `commissions`;
`programs`; `showcases`; `users`: console users; `bench`), and they are wired onto `main` here, in one place.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from typing import Any

import click

from connector.cli import common
from connector.infra import logs

__all__ = ["COMMANDS", "main"]

logger = logging.getLogger(__name__)

# Signals whose default action ends the process without running cleanup; SIGINT already raises
# KeyboardInterrupt. A command ended by one of them stops what it started (a private Redis, its temporary
# folder, the processes of `storelink up`) as on Ctrl-C, then exits with 128 + the signal's number.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


# The signal that is ending this command, once one arrived (see LazyGroup.invoke).
_ending_signal: int | None = None


def _exit_on_signal(signum: int, _frame: Any) -> None:
    global _ending_signal
    _ending_signal = signum
    for sig in EXIT_SIGNALS:  # cleanup runs once: a repeated signal does not cut it short
        signal.signal(sig, signal.SIG_IGN)
    logger.info("stopping on a signal", extra={"signal": signal.Signals(signum).name})
    raise SystemExit(128 + signum)


def _exit_cleanly_on_signals(ctx: click.Context) -> None:
    """Install `_exit_on_signal` for EXIT_SIGNALS left at their default; the previous handlers come back
    when the command's context closes (after its cleanup)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = {
        sig: signal.signal(sig, _exit_on_signal)
        for sig in EXIT_SIGNALS
        if signal.getsignal(sig) == signal.SIG_DFL
    }

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    ctx.call_on_close(restore)


# Each command, by name, and the module attribute that holds it. A command's module is imported only when
# that command runs (or help lists it): `storelink worker` does not load the benchmarks, the demo or the
# support commands, which keeps the start of every process the service spawns short.
COMMANDS: dict[str, str] = {
    "up": "processes:up",
    "worker": "processes:worker",
    "scheduler": "processes:scheduler",
    "web": "processes:web",
    "front": "processes:front",
    "demo": "demo:demo",
    "sandbox": "sandbox:sandbox",
    "db": "db:db",
    "keys": "db:keys",
    "merchants": "merchants:merchants",
    "resync": "resync:resync",
    "problems": "problems:problems",
    "jobs": "jobs:jobs",
    "clients": "clients:clients",
    "webhooks": "webhooks:webhooks",
    "deliveries": "webhooks:deliveries",
    "replay": "webhooks:replay",
    "inbound": "inbound:inbound",
    "commissions": "commissions:commissions",
    "programs": "programs:programs",
    "showcases": "showcases:showcases",
    "users": "users:users",
    "bench": "bench:bench",
}


class LazyGroup(click.Group):
    """A command group whose commands are imported from COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"connector.cli.{module_name}"), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"connector.cli.{COMMANDS[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an error raised while a signal's SystemExit unwinds it (a library that wraps the
        interruption in its own exception, as a database driver caught mid-query does) still ends the
        command as the signal asked, with 128 + its number and no traceback."""
        try:
            return super().invoke(ctx)
        except Exception:
            if _ending_signal is None:
                raise
            logger.debug("error while stopping on a signal", exc_info=True)
            raise SystemExit(128 + _ending_signal) from None


@click.group(cls=LazyGroup)
@click.version_option(package_name="storelink")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Storelink: connects merchant stores to the short-video and live-shopping platform."""
    obj = common.Context()
    ctx.obj = obj
    _exit_cleanly_on_signals(ctx)  # closed after obj: its cleanup is not cut short by a second signal
    ctx.call_on_close(obj.close)
    # Operator commands log warnings only, in plain text; the long-running processes reconfigure.
    logs.configure("WARNING", json_output=False)
