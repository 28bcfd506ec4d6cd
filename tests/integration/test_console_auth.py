"""Signing in to the console over HTTP: nothing is open without a user, sessions in signed cookies with their
flags and expiry, CSRF on every form (and only there), sign-in rate limits, and users removed at once."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from connector.infra.runtime import Runtime
from connector.merchants import users
from tests.helpers import assert_problem
from tests.integration.console_support import PASSWORD, add_user, csrf_of, post, sign_in

PAGES = [
    "/console/",
    "/console/merchants/1",
    "/console/live",
    "/console/queues",
    "/console/webhooks",
    "/console/merchants/1/runs/1",
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"console_sign_in_attempts": 3})


def test_nothing_is_open_without_signing_in(client: FlaskClient) -> None:
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"] == "/console/"
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/console/sign-in?next="), path
    assert_problem(client.get("/console/merchants/1/runs/1.json"), 401, "sign_in_required")
    assert client.post("/console/merchants/1/resync").status_code == 400  # refused before anything: no CSRF


def test_sign_in_wrong_password_then_right_and_sign_out(rt: Runtime, client: FlaskClient) -> None:
    add_user(rt, "Support@Example.com")
    wrong = sign_in(client, "support@example.com", "not the password")
    assert wrong.status_code == 401 and "Wrong email or password." in wrong.get_data(as_text=True)
    unknown = sign_in(client, "nobody@example.com")
    assert unknown.status_code == 401

    answer = sign_in(client, "support@example.com")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("storelink_console=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http, no https PUBLIC_URL
    page = client.get("/console/")
    assert page.status_code == 200 and "support@example.com · support" in page.get_data(as_text=True)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]

    out = post(client, "/console/sign-out")
    assert out.status_code == 302 and "signed_out=1" in out.headers["Location"]
    assert client.get("/console/").status_code == 302


def test_the_session_cookie_is_secure_over_https(rt: Runtime, app: Flask) -> None:
    add_user(rt, "support@example.com")
    client = app.test_client()
    form = client.get("/console/sign-in", base_url="https://localhost")
    assert "Secure" in form.headers["Set-Cookie"]  # the anonymous session holding the CSRF token too
    token = form.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/console/sign-in",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/console/sign-in"},  # over https the form must come from here
        data={"email": "support@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 302
    assert "Secure" in answer.headers["Set-Cookie"]


def test_forms_without_the_csrf_token_are_refused_and_the_api_is_not_touched(
    rt: Runtime, client: FlaskClient
) -> None:
    add_user(rt, "support@example.com")
    csrf_of(client)  # a session with a token exists
    refused = client.post("/console/sign-in", data={"email": "support@example.com", "password": PASSWORD})
    assert_problem(refused, 400, "csrf_failed")
    forged = client.post(
        "/console/sign-in",
        data={"email": "support@example.com", "password": PASSWORD, "csrf_token": "forged"},
    )
    assert_problem(forged, 400, "csrf_failed")
    assert sign_in(client, "support@example.com").status_code == 302
    for path in ("/console/sign-out", "/console/merchants/1/resync", "/console/queues/jobs/x/retry"):
        assert_problem(client.post(path), 400, "csrf_failed")
    assert client.get("/console/").status_code == 200  # still signed in: nothing was done
    # The Platform API and the store webhook receivers know nothing of CSRF.
    assert_problem(client.post("/v1/orders", json={}), 401, "unauthorized")
    assert client.post("/webhooks/feed/999", data=b"{}").status_code in (400, 401, 404)


def test_sign_in_is_rate_limited_per_account(rt: Runtime, client: FlaskClient) -> None:
    add_user(rt, "support@example.com")
    for _ in range(3):
        assert sign_in(client, "support@example.com", "wrong password!").status_code == 401
    limited = sign_in(client, "support@example.com")  # the right password, refused all the same
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 900
    assert "Too many failed sign-ins" in limited.get_data(as_text=True)
    add_user(rt, "other@example.com")
    assert sign_in(client, "other@example.com").status_code == 302  # another account from the same address


def test_sign_in_is_rate_limited_per_address(rt: Runtime, client: FlaskClient) -> None:
    add_user(rt, "support@example.com")
    behind_front = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    for n in range(12):  # four times the per-account limit, spread over accounts
        assert (
            sign_in(client, f"guess{n // 2}@example.com", "wrong password!", **behind_front).status_code
            == 401
        )
    assert sign_in(client, "support@example.com", **behind_front).status_code == 429
    elsewhere = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert sign_in(client, "support@example.com", **elsewhere).status_code == 302


def _age_session(client: FlaskClient, **seconds_ago: float) -> None:
    with client.session_transaction("/console/") as session:
        for key, ago in seconds_ago.items():
            session[key] = time.time() - ago


def test_an_idle_session_expires(rt: Runtime, client: FlaskClient, settings: Settings) -> None:
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    _age_session(client, seen=settings.console_idle_minutes * 60 - 30)
    assert client.get("/console/").status_code == 200  # used in time: still open, and its use recorded
    _age_session(client, seen=settings.console_idle_minutes * 60 + 1)
    expired = client.get("/console/")
    assert expired.status_code == 302 and "expired=1" in expired.headers["Location"]
    assert "Your session expired" in client.get(expired.headers["Location"]).get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_a_session_expires_after_its_absolute_lifetime_however_used(
    rt: Runtime, client: FlaskClient, settings: Settings
) -> None:
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    _age_session(client, t0=settings.console_session_hours * 3600 + 1, seen=1)
    expired = client.get("/console/")
    assert expired.status_code == 302 and "expired=1" in expired.headers["Location"]


def test_polling_does_not_keep_an_idle_session_open(
    rt: Runtime, client: FlaskClient, settings: Settings
) -> None:
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    idle = settings.console_idle_minutes * 60
    _age_session(client, seen=idle - 5)
    assert client.get("/console/live", headers={"X-Console-Refresh": "1"}).status_code == 200
    with client.session_transaction("/console/") as session:
        assert time.time() - session["seen"] >= idle - 5


def test_a_removed_user_is_signed_out_at_the_next_request(rt: Runtime, client: FlaskClient) -> None:
    add_user(rt, "support@example.com")
    sign_in(client, "support@example.com")
    assert client.get("/console/").status_code == 200
    with rt.db.session() as session:
        users.remove_user(session, "support@example.com")
    assert client.get("/console/").status_code == 302


def test_sign_in_goes_back_to_the_page_asked_for_and_never_elsewhere(
    rt: Runtime, client: FlaskClient
) -> None:
    add_user(rt, "support@example.com")
    for target, expected in (
        ("/console/live", "/console/live"),
        ("https://evil.example/", "/console/"),
        ("//evil", "/console/"),
    ):
        client.delete_cookie("storelink_console", path="/console")
        token = csrf_of(client)
        answer = client.post(
            "/console/sign-in",
            data={"email": "support@example.com", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert answer.headers["Location"] == expected, target
