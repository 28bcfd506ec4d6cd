"""What every console page shares: the blueprint, who is signed in (`Principal`) and what they may see, the
page renderer with its security headers, and the runtime.

A page of a merchant the reader may not see is answered 404 (as if it did not exist); a page only support may
open (queues, webhooks) answers 403 to a merchant user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, make_response, render_template

from connector.infra.runtime import Runtime
from connector.merchants.users import SUPPORT

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder=str(HERE / "templates"),
    static_folder=str(HERE / "static"),
    static_url_path="/assets",
)

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a console request is made by: a user (by password), or a merchant signed in by a one-time link or
    a store's session token. `merchant_ids` None: every merchant (support)."""

    label: str
    role: str
    merchant_ids: frozenset[int] | None
    via: str  # password | link | session_token
    user_id: int | None = None

    @property
    def is_support(self) -> bool:
        return self.role == SUPPORT

    def can_see(self, merchant_id: int) -> bool:
        return self.merchant_ids is None or merchant_id in self.merchant_ids


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["storelink"]
    return rt


def principal() -> Principal:
    """The signed-in principal of this request (set by the blueprint's guard before any view runs)."""
    who: Principal | None = g.get("console_principal")
    if who is None:  # a view reached without the guard: never serve it
        abort(401)
    return who


def require_merchant(merchant_id: int) -> Principal:
    """The principal, when it may see `merchant_id`; 404 otherwise (the page does not exist for it)."""
    who = principal()
    if not who.can_see(merchant_id):
        logger.warning(
            "console page of another merchant refused",
            extra={"merchant_id": merchant_id, "who": who.label, "via": who.via},
        )
        abort(404, f"no merchant {merchant_id}")
    return who


def require_support() -> Principal:
    """The principal, when it is support; 403 otherwise."""
    who = principal()
    if not who.is_support:
        abort(403, "this page is for support")
    return who


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A rendered console page, never cached, never framed."""
    response = make_response(render_template(template, **context), status)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
