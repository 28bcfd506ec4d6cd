"""Signing in to the console: signed session cookies, their idle and absolute expiry, CSRF on every form,
sign-in rate limits, sign-out, and the one-time link a store install ends with.

The session is Flask's signed cookie (key derived from SECRET_KEYS, older keys still accepted), path
`/console`, `HttpOnly`, `SameSite=Lax`, `Secure` when the request came over https or PUBLIC_URL is https (a
proxy in front terminates TLS). It holds who signed in (a user id, or the merchant of a one-time link), when,
and when it was last used; every request reads the user again, so a removed user is out at once. Requests a
page makes by itself to refresh (header `X-Console-Refresh`) do not count as use.

Failed sign-ins are counted in Redis per account and per address (the peer, or the last X-Forwarded-For
entry when the peer is a front on this machine) for 15 minutes; past CONSOLE_SIGN_IN_ATTEMPTS (four times
that per address) sign-in answers 429 until the window ends, without checking the password.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFError, CSRFProtect

from connector.console.base import Principal, bp, page, runtime
from connector.infra.models import Merchant
from connector.infra.runtime import Runtime
from connector.merchants import users
from connector.web.problems import problem

logger = logging.getLogger(__name__)

csrf = CSRFProtect()
WINDOW_SECONDS = 15 * 60
ADDRESS_FACTOR = 4
SEEN_EVERY = 15.0
"""Seconds between updates of a session's last use (each one rewrites the cookie)."""
REFRESH_HEADER = "X-Console-Refresh"
OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.sign_in_post", "console.link", "console.static"})
_LIMIT_KEY = "storelink:console:sign-in:"


class _Sessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, `Secure` also when this request came over https.

    A request that does not carry the session cookie (every request outside /console, the cookie's path)
    gets an empty session without the signer being built: Flask would build it, then find no cookie; and an
    empty session nothing read or wrote is saved without work."""

    def open_session(self, app: Flask, req: Request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in req.environ.get("HTTP_COOKIE", ""):
            return self.session_class()
        return super().open_session(app, req)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return  # Flask would neither set nor delete the cookie, nor vary on it
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_app(app: Flask, rt: Runtime) -> None:
    keys = rt.secrets.derived_keys("console session")
    settings = rt.settings
    app.config.update(
        SECRET_KEY=keys[0],
        SECRET_KEY_FALLBACKS=list(keys[1:]),
        SESSION_COOKIE_NAME="storelink_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.console_session_hours),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the console's own guard: the API and webhooks never
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session
    )
    app.session_interface = _Sessions()
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_refused)


def _csrf_refused(exc: CSRFError) -> Response:
    logger.warning("console form refused: CSRF", extra={"path": request.path, "reason": exc.description})
    return problem(400, "csrf_failed", f"the form's CSRF token is missing or wrong ({exc.description})")


@bp.before_request
def _guard() -> Any:
    """Every console request: CSRF on forms, then a signed-in principal for every page but sign-in."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    who = _signed_in()
    if who is None:
        if request.path.endswith(".json"):
            return problem(401, "sign_in_required", "sign in to the console first")
        expired = "1" if g.get("console_expired") else None
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?"), expired=expired))
    g.console_principal = who
    return None


def _signed_in() -> Principal | None:
    uid, link = session.get("uid"), session.get("link")
    if not isinstance(uid, int) and not isinstance(link, int):
        return None
    settings = runtime().settings
    now = time.time()
    started, seen = float(session.get("t0", 0)), float(session.get("seen", 0))
    if (
        now - started > settings.console_session_hours * 3600
        or now - seen > settings.console_idle_minutes * 60
    ):
        logger.info("console session expired", extra={"user_id": uid, "link_merchant_id": link})
        session.clear()
        g.console_expired = True
        return None
    if now - seen >= SEEN_EVERY and REFRESH_HEADER not in request.headers:
        session["seen"] = now
    with runtime().db.session() as db:
        if isinstance(uid, int):
            user = users.get_user(db, uid)
            if user is None:
                session.clear()
                return None
            return Principal(user.email, user.role, users.merchant_ids_of(db, user), "password", user.id)
        merchant = db.get(Merchant, link)
        if merchant is None:
            session.clear()
            return None
        return Principal(f"{merchant.name} (sign-in link)", users.MERCHANT, frozenset({merchant.id}), "link")


def _start(**who: int) -> None:
    """A fresh session for `who` (a new CSRF token too: nothing of the signed-out session carries over)."""
    session.clear()
    now = time.time()
    session.update(who, t0=now, seen=now)
    session.permanent = True


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/console") and "\\" not in value and not value.startswith("//"):
        return value
    return url_for("console.merchants")


# --- rate limits -------------------------------------------------------------------------------------------


def client_address() -> str:
    """The client's address: the peer's, or the last X-Forwarded-For entry when the peer is a front on this
    machine (the buffering front of `storelink up`, or a proxy on loopback)."""
    peer = request.remote_addr or ""
    try:
        local = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local = False
    forwarded = request.headers.get("X-Forwarded-For", "")
    if local and forwarded:
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer


def _limit_keys(email: str, address: str) -> list[tuple[str, int]]:
    limit = runtime().settings.console_sign_in_attempts
    account = hashlib.sha256(users.normalize_email(email).encode()).hexdigest()
    return [
        (_LIMIT_KEY + "account:" + account, limit),
        (_LIMIT_KEY + "address:" + address, limit * ADDRESS_FACTOR),
    ]


def _wait_seconds(email: str, address: str) -> int | None:
    """Seconds until sign-in is allowed again for this account or address; None when it is allowed now."""
    keys = _limit_keys(email, address)
    pipe = runtime().redis.pipeline(transaction=False)
    for key, _ in keys:
        pipe.get(key)
        pipe.ttl(key)
    answers = pipe.execute()
    for index, (_, limit) in enumerate(keys):
        count, ttl = answers[2 * index], answers[2 * index + 1]
        if count is not None and int(count) >= limit:
            return int(ttl) if ttl and ttl > 0 else WINDOW_SECONDS
    return None


def _count_failure(email: str, address: str) -> None:
    pipe = runtime().redis.pipeline(transaction=True)
    for key, _ in _limit_keys(email, address):
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(key)
    pipe.execute()


# --- views ---------------------------------------------------------------------------------------------------


@bp.get("/sign-in")
def sign_in() -> Response:
    note = None
    if request.args.get("expired"):
        note = "Your session expired: sign in again."
    elif request.args.get("signed_out"):
        note = "Signed out."
    return page("sign_in.html", note=note, next=request.args.get("next", ""), email="")


@bp.post("/sign-in")
def sign_in_post() -> Response:
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")
    target = _safe_next(request.form.get("next"))
    address = client_address()
    wait = _wait_seconds(email, address)
    if wait is not None:
        logger.warning("console sign-in refused: too many attempts", extra={"address": address})
        response = page(
            "sign_in.html",
            429,
            error=f"Too many failed sign-ins: try again in {wait} s.",
            next=target,
            email=email,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    with runtime().db.session() as db:
        user = users.authenticate(db, email, password)
        user_id = user.id if user else None
    if user_id is None:
        _count_failure(email, address)
        logger.warning("console sign-in failed", extra={"address": address})
        return page("sign_in.html", 401, error="Wrong email or password.", next=target, email=email)
    runtime().redis.delete(_limit_keys(email, address)[0][0])
    _start(uid=user_id)
    logger.info("console sign-in", extra={"user_id": user_id, "address": address})
    return redirect(target)  # type: ignore[return-value]


@bp.post("/sign-out")
def sign_out() -> Response:
    session.clear()
    return redirect(url_for("console.sign_in", signed_out=1))  # type: ignore[return-value]


@bp.get("/link/<token>")
def link(token: str) -> Response:
    """A one-time link (made when a store install completes): signs in to that merchant's page only."""
    with runtime().db.session() as db:
        merchant_id = users.redeem_link(db, token)
    if merchant_id is None:
        return page(
            "message.html",
            410,
            title="Link expired",
            message="This sign-in link is unknown, used or expired.",
        )
    _start(link=merchant_id)
    return redirect(url_for("console.merchant", merchant_id=merchant_id))  # type: ignore[return-value]
