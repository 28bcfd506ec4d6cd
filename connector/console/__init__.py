"""The web console for merchants and support: server-rendered pages over the areas' service functions.

`init_app` wires it onto the app: sessions and CSRF (`auth`), the merchant pages (`views`), resync (`resync`),
support's queue and webhook pages (`operations`), the page a store's admin embeds (`embedded`), and `/`, which
redirects to `/console/`.
"""

from __future__ import annotations

from flask import Flask, Response, redirect

from connector.console import auth, embedded, operations, resync, views
from connector.console.base import bp
from connector.infra.runtime import Runtime

__all__ = ["init_app", "operations", "resync", "views"]


def _home() -> Response:
    return redirect("/console/")  # type: ignore[return-value]


def init_app(app: Flask, rt: Runtime) -> None:
    auth.init_app(app, rt)
    app.register_blueprint(bp)
    app.register_blueprint(embedded.ebp)
    app.add_url_rule("/", "home", _home)
