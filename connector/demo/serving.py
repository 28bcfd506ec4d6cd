"""After the summary: `storelink up` keeps serving (with the emulated stores) until Ctrl-C, with the console's
address and a support sign-in printed."""

from __future__ import annotations

import logging
import time

from connector.demo.stage import Stage
from connector.infra import runtime

logger = logging.getLogger(__name__)


def console_sign_in(rt: runtime.Runtime) -> tuple[str, str] | None:
    """A support user for the console, as (email, password), or None when this build has no console users."""
    return None


def serve(stage: Stage, kept: bool) -> None:
    """Keep everything running until Ctrl-C (or a signal); a `storelink up` that exits ends the wait."""
    out = stage.console
    out.print(f"\nThe console: [bold]{stage.web_url}/console[/]")
    sign_in = console_sign_in(stage.rt)
    if sign_in is None:
        out.print("It needs a support user to sign in: this build cannot make one yet.")
    else:
        out.print(f"Sign in as [bold]{sign_in[0]}[/] with the password [bold]{sign_in[1]}[/]")
    out.print(f"Platform API: {stage.web_url}/v1 (key: {stage.platform.key})")
    if kept:
        out.print(f"The demo's data stays in {stage.data_dir}.")
    out.print("Serving until Ctrl-C…")
    try:
        while True:
            stage.up.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        out.print("stopping…")
