"""HTTP routes of clicks on creators' links: the public redirect `GET /l/{code}` and the platform's reports of
views and taps, `POST /v1/affiliate-links/{code}/interactions`.

The redirect is the hot path: a cached link lookup, two HMACs and one Redis round trip (connector.affiliates
.clicks), no database write. Bots, link previews, prefetches and HEAD requests are redirected but not counted.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Final, Literal

from flask import Blueprint, Flask, Response, request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from werkzeug.http import parse_cookie
from werkzeug.urls import iri_to_uri

from connector.affiliates import clicks, visitors
from connector.api.common import api_runtime, as_utc, authenticate, json_response, parse_body, require_client
from connector.api.openapi import doc
from connector.domain.errors import NotFoundError
from connector.infra.runtime import Runtime
from connector.web import context
from connector.web.context import quiet_access_log

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

bp = Blueprint("api_clicks", __name__)
bp.before_request(require_client)
public = Blueprint("affiliate_redirects", __name__)

TAG = "affiliates"
CLICK_COOKIE = "sl_click"
VISITOR_COOKIE_SECONDS = 30 * 86400
MAX_REPORT_AGE = timedelta(days=30)


def _not_found(code: str) -> NotFoundError:
    return NotFoundError(f"affiliate link {code!r} not found", code="affiliate_link_not_found")


# --- the public redirect -------------------------------------------------------------------------------------


ROUTE: Final = "/l/<string(maxlength=24):code>"


@public.get(ROUTE)
@doc(
    summary="Follow a creator's link",
    tags=[TAG],
    responses={302: None, 404: None},
    public=True,
    operation_id="followAffiliateLink",
    codes={404: ["affiliate_link_not_found"]},
)
def follow_link(code: str) -> Response:
    """Redirect (302) to the product's page on the platform (`AFFILIATE_LANDING_URL`) with a click id, and
    set the `sl_click` cookie. A visitor's repeat visits to a link within `AFFILIATE_CLICK_DEDUPE_SECONDS`
    count once and carry the same click id. Bots, link previews, prefetches and HEAD requests are
    redirected without a click id and not counted."""
    # A known link's visits are answered by `LinkRedirects` ahead of Flask; this route answers the rest (an
    # unknown code: 404) and documents the redirect.
    rt = api_runtime()
    target = clicks.find_link(rt, code)
    if target is None:
        raise _not_found(code)
    quiet_access_log()  # each click is a row of its own; bots and previews would drown the log
    return Response(status=302, headers=redirect_headers(rt, request.environ, target))


def redirect_headers(
    rt: Runtime, environ: WSGIEnvironment, target: clicks.LinkTarget
) -> list[tuple[str, str]]:
    """The redirect's headers for a visit (WSGI `environ`) to `target`'s link: its Location, and for a visit
    that counts (recorded here) the click and visitor cookies. Headers are read from the environ directly, and
    cookies parsed only when some were sent."""
    template = rt.settings.affiliate_landing_url
    headers = {name: environ.get(key, "") for name, key in _ENVIRON_KEYS}
    if not visitors.counted(environ["REQUEST_METHOD"], headers):
        return _location(template, clicks.landing_url_without_click(template, target))
    cookies: Mapping[str, str] = (
        parse_cookie(environ["HTTP_COOKIE"]) if "HTTP_COOKIE" in environ else _NO_COOKIES
    )
    visitor = visitors.browser_visitor(clicks.visitor_key(rt), headers, cookies, environ.get("REMOTE_ADDR"))
    recorded = clicks.record(rt, clicks.click_ids(rt), target.link_id, visitor)
    answer = _location(template, clicks.landing_url(template, target, recorded.click_id))
    secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
    # Written by hand (the values are URL-safe).
    answer.append(
        (
            "Set-Cookie",
            f"{CLICK_COOKIE}={recorded.click_id}; Max-Age={target.window_seconds}; Path=/; HttpOnly{secure}; "
            "SameSite=Lax",
        )
    )
    if cookies.get(visitors.VISITOR_COOKIE) != visitor:
        answer.append(
            (
                "Set-Cookie",
                f"{visitors.VISITOR_COOKIE}={visitor}; Max-Age={VISITOR_COOKIE_SECONDS}; Path=/; HttpOnly{secure}; "
                "SameSite=Lax",
            )
        )
    return answer


_ENVIRON_KEYS: Final = tuple((name, "HTTP_" + name.upper().replace("-", "_")) for name in visitors.HEADERS)
_NO_COOKIES: Final[Mapping[str, str]] = MappingProxyType({})
_SAMPLE: Final = {"product_id": 1, "variant_id": 1, "merchant_id": 1, "code": "Ab-1_", "click_id": "Ab-1_"}


@functools.lru_cache(maxsize=8)
def _plain(template: str) -> bool:
    """Whether the landing URLs of `template` are URIs as they are (werkzeug's `iri_to_uri` would leave
    them): the values put in are URL-safe, so one sample answers for all."""
    sample = template.format(**_SAMPLE)
    return iri_to_uri(sample) == sample


def _location(template: str, url: str) -> list[tuple[str, str]]:
    return [
        ("Location", url if _plain(template) else iri_to_uri(url)),
        ("Cache-Control", "no-store"),  # every visit must reach us to be counted
        ("Referrer-Policy", "no-referrer"),
    ]


class LinkRedirects:
    """WSGI middleware: answers `GET` and `HEAD /l/{code}` of a known link itself, ahead of Flask (no request
    context, routing, session or response object: the redirect is the service's hottest path); everything
    else, an unknown code included, goes on to the Flask app. It answers what `follow_link` would."""

    def __init__(self, app: WSGIApplication, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if not path.startswith("/l/") or (method != "GET" and method != "HEAD"):
            return self.app(environ, start_response)
        try:
            target = clicks.find_link(self.rt, path[3:])  # None for a code that is not a link's too
            if target is None:
                return self.app(environ, start_response)  # the Flask route answers 404
            environ[context.ROUTE] = ROUTE
            quiet_access_log(environ)
            headers = redirect_headers(self.rt, environ, target)
        except Exception:
            # The database down, say: the Flask route tries again and answers its problem document if it fails
            # too (a click recorded before the failure is found again by its dedupe key, not counted twice).
            logger.debug("link redirect handed to the Flask route", exc_info=True)
            return self.app(environ, start_response)
        headers += _EMPTY_BODY
        start_response("302 FOUND", headers)
        return []


_EMPTY_BODY: Final = (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "0"))


def install(app: Flask) -> None:
    """Put `LinkRedirects` in front of the app's WSGI callable."""
    app.wsgi_app = LinkRedirects(app.wsgi_app, app.extensions["storelink"])  # type: ignore[method-assign]


# --- the platform's reports ----------------------------------------------------------------------------------


class InteractionCreate(BaseModel):
    """A view or a tap of a creator's link that the platform saw in its app."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["view", "tap"]
    visitor: str = Field(
        min_length=1,
        max_length=visitors.MAX_VISITOR_LENGTH,
        description="The platform's id of the viewer (kept only as a keyed hash).",
    )
    occurred_at: Annotated[datetime | None, Field(strict=False)] = Field(
        default=None, description="ISO 8601; UTC when it has no offset; default now. At most 30 days old."
    )

    @field_validator("visitor")
    @classmethod
    def _visible(cls, value: str) -> str:
        if any(ch < " " or ch == "\x7f" for ch in value) or not value.strip():
            raise ValueError("must be visible text without control characters")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _recent(cls, value: datetime | None) -> datetime | None:
        value = as_utc(value)
        if value is None:
            return None
        now = datetime.now(UTC)
        if value > now + clicks.FUTURE_SKEW:
            raise ValueError("is in the future")
        if value < now - MAX_REPORT_AGE:
            raise ValueError("is more than 30 days ago")
        return value


class InteractionOut(BaseModel):
    """The recorded view or tap."""

    click_id: str = Field(description="Carry it to checkout (`click_id`) to attribute the order.")
    code: str
    kind: str
    occurred_at: datetime
    duplicate: bool = Field(
        description="True when the visitor's earlier report of this kind within the dedupe window was "
        "answered again (nothing new recorded)."
    )


@bp.post("/affiliate-links/<string(maxlength=24):code>/interactions")
@doc(
    summary="Report a view or tap of a link",
    tags=[TAG],
    body=InteractionCreate,
    responses={202: InteractionOut, 400: None, 404: None, 415: None, 422: None},
    codes={404: ["affiliate_link_not_found"]},
    operation_id="reportAffiliateLinkInteraction",
)
def report_interaction(code: str) -> Response:
    """Record a view or tap the platform saw (deduplicated per visitor and kind within the window, as
    clicks are); written to the database with the next click flush, resolvable by its click id at once."""
    client = authenticate()
    rt = api_runtime()
    target = clicks.find_link(rt, code)
    if target is None or target.platform_client_id != client.id:
        raise _not_found(code)
    body = parse_body(InteractionCreate)
    at = body.occurred_at or datetime.now(UTC)
    visitor = visitors.platform_visitor(clicks.visitor_key(rt), body.visitor)
    recorded = clicks.record(rt, clicks.click_ids(rt), target.link_id, visitor, kind=body.kind, at=at)
    ref = clicks.click_ids(rt).verify(recorded.click_id)
    out = InteractionOut(
        click_id=recorded.click_id,
        code=code,
        kind=body.kind,
        occurred_at=ref.occurred_at if ref is not None else at,
        duplicate=not recorded.new,
    )
    logger.info(
        "link interaction reported",
        extra={"link_id": target.link_id, "kind": body.kind, "duplicate": not recorded.new},
    )
    return json_response(out, 202)
