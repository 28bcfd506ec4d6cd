"""The versioned Platform API (`/v1`): registers every resource blueprint, the shared API conventions and the
OpenAPI document on the app."""

from __future__ import annotations

import logging

from flask import Flask

from connector.api import (
    affiliates,
    catalog,
    clicks,
    commissions,
    common,
    connect,
    creators,
    live,
    openapi,
    orders,
    showcases,
)

logger = logging.getLogger(__name__)

PREFIX = openapi.PREFIX


def init_app(app: Flask) -> None:
    """Mount the catalog, store connection, orders, live, affiliate, link interaction, creator, commission,
    showcase and OpenAPI routes under `/v1`, and the public link redirect `/l/<code>` (call after
    `problems.init_app`)."""
    common.init_app(app)
    for blueprint in (
        openapi.bp,
        catalog.bp,
        connect.bp,
        orders.bp,
        live.bp,
        affiliates.bp,
        clicks.bp,
        creators.bp,
        commissions.bp,
        showcases.bp,
    ):
        app.register_blueprint(blueprint, url_prefix=PREFIX)
    app.register_blueprint(clicks.public)  # GET /l/<code>: creators' links, public
    logger.debug("platform API mounted", extra={"prefix": PREFIX})
