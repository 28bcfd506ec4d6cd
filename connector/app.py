"""Web composition root: `create_app()` wires settings, runtime and every web module's `init_app`."""

from __future__ import annotations

import logging

from flask import Flask

from config.settings import Settings, get_settings
from connector import api as platform_api
from connector import console
from connector.affiliates import ledger
from connector.api import clicks, live_purchases
from connector.infra import logs, runtime
from connector.showcases import events as showcase_events
from connector.web import context, health, install, metrics, problems
from webhooks import api
from webhooks.inbound import receiver
from webhooks.outbound import fanout

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, rt: runtime.Runtime | None = None) -> Flask:
    """Build the WSGI app. Without arguments it reads the environment (as gunicorn does)."""
    settings = settings or get_settings()
    logs.configure(settings.log_level, settings.log_json)
    if rt is None:
        rt = runtime.current() if settings.redis_url else None
    if rt is None:
        raise RuntimeError("REDIS_URL is not set: run the web app through `storelink up` or set REDIS_URL")
    runtime.install(rt)

    ledger.install()  # order events published by requests reach the commission ledger in their transaction
    fanout.install()  # events published by requests fan out to webhook endpoints in the same transaction
    showcase_events.install()  # catalog and stock changes refresh the showcases they show in

    app = Flask("storelink", static_folder=None)  # no implicit /static: assets are served by explicit routes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["storelink"] = rt
    problems.init_app(app)
    metrics.init_app(app)
    health.init_app(app)
    api.init_app(app)  # Platform API: /v1/webhook-endpoints
    platform_api.init_app(app)  # Platform API: /v1 catalog, orders, live sessions, openapi.json
    receiver.init_app(app)  # store webhooks: /webhooks/<source>
    install.init_app(app)  # store installs: /<kind>/install, /<kind>/callback
    console.init_app(app, rt)  # the web console: /console (and / redirects there)
    live_purchases.install(app)  # live purchases are answered ahead of Flask
    clicks.install(app)  # known links' redirects are answered ahead of Flask
    context.init_app(
        app, settings.max_request_bytes
    )  # outermost: request ids, access log, metrics, size limit
    logger.debug("app created", extra={"database": rt.db.engine.dialect.name})
    return app
