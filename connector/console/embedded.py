"""The merchant page embedded in a store's admin (`/console/embedded/<kind>`), for store kinds whose adapter is
`Embeddable`: no cookies and no sign-in. Every request carries the store admin's session token (the `id_token`
query parameter on the first load, `Authorization: Bearer` on the page's own requests), checked by the adapter
with the app's secret; the token's store must be a merchant installed here, and the page is that merchant's.
The answer may be framed only by that store's admin (`Content-Security-Policy: frame-ancestors`).
"""

from __future__ import annotations

import logging
from typing import cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, jsonify, make_response, render_template, request
from sqlalchemy import select

from connector.console import resync, views
from connector.console.base import HERE, Principal, runtime
from connector.domain import registry
from connector.domain.errors import AuthError, PermanentError, ValidationError
from connector.domain.ports import Embeddable, EmbedPage
from connector.infra.models import Merchant
from connector.merchants import installs
from connector.merchants.users import MERCHANT
from connector.web.problems import problem

logger = logging.getLogger(__name__)

ebp = Blueprint(
    "console_embedded", __name__, url_prefix="/console/embedded", template_folder=str(HERE / "templates")
)


class RefusedError(Exception):
    """A request refused before its view: the problem document to answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@ebp.errorhandler(RefusedError)
def _refused(exc: RefusedError) -> Response:
    return exc.response


def _embeddable(kind: str) -> type[Embeddable]:
    try:
        cls = registry.adapter_class(kind)
    except ValidationError:
        abort(404, f"no store kind {kind!r}")
    if not callable(getattr(cls, "session_token_store_ref", None)) or not callable(
        getattr(cls, "embed_page", None)
    ):
        abort(404, f"{kind} stores do not embed the console")
    return cast(type[Embeddable], cls)


def _token() -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.args.get("id_token", "")


def authenticate(kind: str) -> tuple[Principal, Merchant, EmbedPage]:
    """The merchant a request's session token is for, or a 401/403 problem (raised as `RefusedError`)."""
    cls = _embeddable(kind)
    rt = runtime()
    try:
        app = installs.app_for(rt.settings, kind)
    except installs.InstallError as exc:
        raise RefusedError(problem(404, exc.code, exc.message)) from None
    token = _token()
    if not token:
        raise RefusedError(
            problem(401, "session_token_required", "the store admin's session token is missing")
        )
    try:
        store_ref = cls.session_token_store_ref(app, token)
    except AuthError as exc:
        logger.warning("embedded console refused: session token", extra={"kind": kind, "error": exc.message})
        raise RefusedError(problem(401, exc.code, exc.message)) from None
    with rt.db.session() as db:
        merchant = db.scalar(select(Merchant).where(Merchant.kind == kind, Merchant.store_ref == store_ref))
    if merchant is None or merchant.status == "uninstalled":
        logger.warning(
            "embedded console refused: store not installed", extra={"kind": kind, "store": store_ref}
        )
        raise RefusedError(problem(403, "store_not_installed", f"{store_ref} has not installed Storelink"))
    who = Principal(f"{store_ref} (store admin)", MERCHANT, frozenset({merchant.id}), "session_token")
    return who, merchant, cls.embed_page(app, store_ref)


def _framed(response: Response, embed: EmbedPage) -> Response:
    scripts = " ".join(
        ["'self'", *sorted({f"{p.scheme}://{p.netloc}" for p in map(urlsplit, embed.scripts)})]
    )
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        f"script-src {scripts}; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        f"object-src 'none'; frame-ancestors {' '.join(embed.frame_ancestors)}"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@ebp.get("/<kind>")
def merchant_page(kind: str) -> Response:
    who, merchant, embed = authenticate(kind)
    context = views.merchant_context(who, merchant.id)
    html = render_template("merchant.html", embedded=embed, embedded_kind=kind, **context)
    return _framed(make_response(html), embed)


@ebp.post("/<kind>/resync")
def start_resync(kind: str) -> Response:
    """Start a resync of the token's merchant; answers the run's progress document (201), or a 422 problem
    when it cannot run (a kind its store cannot do, a bad `since`)."""
    _, merchant, embed = authenticate(kind)
    body = request.get_json(silent=True) or request.form
    run_kind = str(body.get("kind", "catalog"))
    dry_run = str(body.get("dry_run", "1")) not in ("0", "false", "False")
    since = body.get("since")
    rt = runtime()
    try:
        run_id = resync.start(rt, merchant.id, run_kind, dry_run, str(since) if since else None)
    except PermanentError as exc:
        return _framed(problem(422, exc.code, exc.message), embed)
    response = jsonify(resync.progress(rt, merchant.id, run_id))
    response.status_code = 201
    return _framed(response, embed)


@ebp.get("/<kind>/runs/<int:run_id>.json")
def run_progress(kind: str, run_id: int) -> Response:
    _, merchant, embed = authenticate(kind)
    return _framed(jsonify(resync.progress(runtime(), merchant.id, run_id)), embed)
