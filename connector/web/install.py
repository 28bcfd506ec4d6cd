"""Store install routes: `GET /<kind>/install?shop=…` redirects to the store's grant page, and
`GET /<kind>/callback` completes the install (see `connector.merchants.installs`); refusals are problem documents.

The store's admin opening the installed app in its frame (an `id_token` in the query) is sent to the embedded
console page (`connector.console.embedded`). A completed install sends a browser (a request that prefers HTML) on to the merchant's console page through a
one-time sign-in link for that merchant only; any other client gets the install's JSON summary."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, request
from sqlalchemy import select

from connector.infra.models import Merchant
from connector.infra.runtime import Runtime
from connector.merchants import installs, users
from connector.web.problems import problem

logger = logging.getLogger(__name__)

bp = Blueprint("install", __name__)


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["storelink"]
    return rt


def _public_url(rt: Runtime, kind: str) -> str:
    """The address stores send merchants back to: PUBLIC_URL. Without it, only against a store emulator
    (`<kind>_admin_base_url` set: tests, the demo) the address this request came to; otherwise the install is
    refused, since the request's Host header is the client's to choose and would become the OAuth redirect."""
    if rt.settings.public_url:
        return rt.settings.public_url
    if getattr(rt.settings, f"{kind}_admin_base_url", ""):
        return request.host_url.rstrip("/")
    logger.warning("install refused: PUBLIC_URL is not set", extra={"kind": kind})
    raise installs.InstallError(
        503,
        "public_url_required",
        "store installs are off until PUBLIC_URL is set (the address stores send merchants back to)",
    )


def _installed(rt: Runtime, kind: str, store_ref: str) -> bool:
    with rt.db.session() as session:
        status = session.scalar(
            select(Merchant.status).where(Merchant.kind == kind, Merchant.store_ref == store_ref.lower())
        )
    return status is not None and status != "uninstalled"


def _refused(exc: installs.InstallError) -> Response:
    extra: dict[str, Any] = {"missing": exc.details["missing"]} if "missing" in exc.details else {}
    return problem(exc.status, exc.code, exc.message, **extra)


@bp.get("/<kind>/install")
def install(kind: str) -> Response:
    rt = _runtime()
    if any(len(values) > 1 for values in request.args.listvalues()):
        return problem(400, "invalid_request", "the request repeats a query parameter")
    if request.args.get("id_token") and _installed(rt, kind, request.args.get("shop", "")):
        # The store's admin opening the installed app in its frame: the embedded console page checks the token.
        return redirect(f"/console/embedded/{kind}?{request.query_string.decode()}", code=302)  # type: ignore[return-value]
    try:
        url = installs.start(rt, kind, request.args.to_dict(), _public_url(rt, kind))
    except installs.InstallError as exc:
        return _refused(exc)
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"
    return response  # type: ignore[return-value]


@bp.get("/<kind>/callback")
def callback(kind: str) -> Response:
    rt = _runtime()
    if any(len(values) > 1 for values in request.args.listvalues()):
        return problem(400, "invalid_request", "the request repeats a query parameter")
    try:
        done = installs.complete(rt, kind, request.args.to_dict(), _public_url(rt, kind))
    except installs.InstallError as exc:
        return _refused(exc)
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return _to_console(rt, done.merchant_id)
    response = jsonify(
        {
            "merchant_id": done.merchant_id,
            "kind": done.kind,
            "store_ref": done.store_ref,
            "created": done.created,
            "sync_run_id": done.run_id,
            "webhook_topics": done.webhook_topics,
        }
    )
    response.status_code = 201 if done.created else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def _to_console(rt: Runtime, merchant_id: int) -> Response:
    """Redirect the merchant's browser to its console page through a new one-time sign-in link."""
    with rt.db.session() as session:
        token = users.issue_link(session, merchant_id, timedelta(minutes=rt.settings.console_link_minutes))
    response = redirect(f"/console/link/{token}", code=302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response  # type: ignore[return-value]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
