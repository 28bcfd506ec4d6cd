"""CLI composition root: `storelink` commands for running, operating and supporting the service.

`main` is the command group; each module of this package holds one area's commands (`processes`: up, worker,
scheduler; `demo`; `db`: db and keys; `merchants`; `resync`; `jobs`; `clients`; `webhooks`: webhooks,
deliveries and replay; `inbound`; `commissions`; `programs`; `bench`), and they are wired onto `main` here, in one place.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from connector.cli import (
    bench,
    clients,
    commissions,
    db,
    demo,
    inbound,
    jobs,
    merchants,
    processes,
    programs,
    resync,
    webhooks,
)
from connector.cli.common import (
    PIPE_WIDTH,
    TERMINAL,
    Context,
    _Output,
    console,
    err,
    pass_ctx,
    resolve_cli_redis,
    run_file,
)
from connector.cli.processes import gunicorn_command
from connector.infra import logs

__all__ = [
    "PIPE_WIDTH",
    "TERMINAL",
    "Context",
    "_Output",
    "console",
    "err",
    "gunicorn_command",
    "main",
    "pass_ctx",
    "resolve_cli_redis",
    "run_file",
]

logger = logging.getLogger(__name__)

# Signals whose default action ends the process without running cleanup; SIGINT already raises
# KeyboardInterrupt. A command ended by one of them stops what it started (a private Redis, its temporary
# folder, the processes of `storelink up`) as on Ctrl-C, then exits with 128 + the signal's number.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _exit_on_signal(signum: int, _frame: Any) -> None:
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


@click.group()
@click.version_option(package_name="storelink")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Storelink: connects merchant stores to the short-video and live-shopping platform."""
    obj = Context()
    ctx.obj = obj
    _exit_cleanly_on_signals(ctx)  # closed after obj: its cleanup is not cut short by a second signal
    ctx.call_on_close(obj.close)
    # Operator commands log warnings only, in plain text; the long-running processes reconfigure.
    logs.configure("WARNING", json_output=False)


for command in (
    processes.up,
    processes.worker,
    processes.scheduler,
    demo.demo,
    db.db,
    db.keys,
    merchants.merchants,
    resync.resync,
    jobs.jobs,
    clients.clients,
    webhooks.webhooks,
    webhooks.deliveries,
    webhooks.replay,
    inbound.inbound,
    commissions.commissions,
    programs.programs,
    bench.bench,
):
    main.add_command(command)
