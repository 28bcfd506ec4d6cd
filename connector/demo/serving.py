"""After the summary: `storelink up` keeps serving (with the emulated stores) until Ctrl-C, with the console's
address and a support sign-in printed."""

from __future__ import annotations

import logging
import secrets
import time

from connector.demo.stage import Stage
from connector.infra import runtime
from connector.merchants import users

logger = logging.getLogger(__name__)


DEMO_SUPPORT_EMAIL = "support@demo.example"


def console_sign_in(rt: runtime.Runtime) -> tuple[str, str]:
    """A support user for the console, made afresh with a random password, as (email, password)."""
    password = secrets.token_urlsafe(12)
    with rt.db.session() as session:
        if any(row.email == DEMO_SUPPORT_EMAIL for row in users.list_users(session)):
            users.remove_user(session, DEMO_SUPPORT_EMAIL)
            session.flush()
        users.create_user(session, DEMO_SUPPORT_EMAIL, password, users.SUPPORT)
    return DEMO_SUPPORT_EMAIL, password


def serve(stage: Stage, kept: bool) -> None:
    """Keep everything running until Ctrl-C (or a signal); a `storelink up` that exits ends the wait."""
    out = stage.console
    out.print(f"\nThe console: [bold]{stage.web_url}/console[/]")
    email, password = console_sign_in(stage.rt)
    out.print(f"Sign in as [bold]{email}[/] with the password [bold]{password}[/]")
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
