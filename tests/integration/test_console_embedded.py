"""The console inside Shopify admin and at the end of an install: session tokens the tests sign themselves
(valid, expired, wrong audience, wrong secret, another shop, an uninstalled shop), the frame ancestors of the
shop's admin, no cookies; and a completed install that lands the merchant's browser on its page."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from connector.infra.models import Merchant
from connector.infra.runtime import Runtime
from connector.merchants.records import create_merchant
from connector.sandbox.shopify import Server
from tests.helpers import assert_problem
from tests.integration.test_shopify_install import SHOP, _grant, settings, shopify  # noqa: F401 (fixtures)

# The emulator's app secret is shorter than PyJWT recommends for HS256; it signs only in tests.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

OTHER = "other-shop.myshopify.com"


def _token(rt: Runtime, shop: str = SHOP, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": rt.settings.shopify_api_key,
        "sub": "42",
        "exp": now + 60,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    secret = changes.pop("secret", rt.settings.shopify_api_secret.get_secret_value())
    return jwt.encode({**claims, **changes}, secret, algorithm="HS256")


def _merchant(rt: Runtime, shop: str, name: str) -> int:
    with rt.db.session() as session:
        return create_merchant(
            session,
            rt.secrets,
            kind="shopify",
            name=name,
            config={"shop": shop},
            credentials={"access_token": "x"},
        ).id


@pytest.fixture
def installed(rt: Runtime) -> int:
    return _merchant(rt, SHOP, "demo")


def test_the_embedded_page_opens_with_the_shops_session_token(
    rt: Runtime, client: FlaskClient, installed: int
) -> None:
    page = client.get(
        f"/console/embedded/shopify?{urlencode({'id_token': _token(rt), 'shop': SHOP, 'embedded': '1'})}"
    )
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert 'id="merchant-name">demo' in html
    assert f'<meta name="shopify-api-key" content="{rt.settings.shopify_api_key}">' in html
    assert '<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js"></script>' in html
    assert html.index("app-bridge.js") < html.index("console.js")  # App Bridge is the first script
    policy = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors https://{SHOP} https://admin.shopify.com" in policy
    assert "script-src 'self' https://cdn.shopify.com" in policy
    assert "Set-Cookie" not in page.headers and "csrf_token" not in html


def test_a_session_token_in_the_header_starts_and_follows_a_resync(
    rt: Runtime, client: FlaskClient, installed: int
) -> None:
    bearer = {"Authorization": f"Bearer {_token(rt)}"}
    started = client.post(
        "/console/embedded/shopify/resync", json={"kind": "catalog", "dry_run": "1"}, headers=bearer
    )
    assert started.status_code == 201, started.get_data(
        as_text=True
    )  # no CSRF token: no cookie to forge with
    run = started.get_json()
    assert (run["kind"], run["dry_run"], run["status"]) == ("catalog", True, "queued")
    assert "Set-Cookie" not in started.headers
    followed = client.get(f"/console/embedded/shopify/runs/{run['id']}.json", headers=bearer)
    assert followed.status_code == 200 and followed.get_json()["id"] == run["id"]
    assert_problem(
        client.get(f"/console/embedded/shopify/runs/{run['id']}.json"), 401, "session_token_required"
    )
    assert_problem(client.post("/console/embedded/shopify/resync", json={}), 401, "session_token_required")


def test_a_refused_resync_is_a_problem_document_not_a_run(
    rt: Runtime, client: FlaskClient, installed: int
) -> None:
    bearer = {"Authorization": f"Bearer {_token(rt)}"}
    for body, code in (
        ({"kind": "everything"}, "bad_sync_kind"),
        ({"kind": "orders", "since": "soon"}, "bad_since"),
        ({"kind": "catalog", "since": "2026-01-01T00:00"}, "since_needs_orders"),
    ):
        answer = client.post("/console/embedded/shopify/resync", json=body, headers=bearer)
        assert_problem(answer, 422, code)
        assert "frame-ancestors" in answer.headers["Content-Security-Policy"]
    started = client.post(
        "/console/embedded/shopify/resync",
        json={"kind": "orders", "since": "2026-01-01T00:00"},
        headers=bearer,
    ).get_json()
    assert (started["kind"], started["dry_run"], started["since"]) == (
        "orders",
        True,
        "2026-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"aud": "another-app"}, "audience"),
        ({"secret": "not-the-apps-secret-but-long-enough-for-hs256"}, "signature"),
        ({"iss": f"https://{OTHER}/admin"}, "issuer"),
    ],
)
def test_tokens_that_do_not_check_out_are_refused(
    rt: Runtime, client: FlaskClient, installed: int, changes: dict[str, Any], why: str
) -> None:
    answer = client.get(f"/console/embedded/shopify?id_token={_token(rt, **changes)}")
    assert_problem(answer, 401, "invalid_session_token")
    assert "frame-ancestors" not in answer.headers.get("Content-Security-Policy", "")


def test_another_shops_token_opens_only_that_shop_and_never_an_uninstalled_one(
    rt: Runtime, client: FlaskClient, installed: int
) -> None:
    assert_problem(
        client.get(f"/console/embedded/shopify?id_token={_token(rt, OTHER)}"), 403, "store_not_installed"
    )
    other = _merchant(rt, OTHER, "other")
    other_run = client.post(
        "/console/embedded/shopify/resync",
        json={"kind": "catalog"},
        headers={"Authorization": f"Bearer {_token(rt, OTHER)}"},
    ).get_json()["id"]
    mine = {"Authorization": f"Bearer {_token(rt)}"}
    assert_problem(
        client.get(f"/console/embedded/shopify/runs/{other_run}.json", headers=mine), 404, "not_found"
    )
    page = client.get(f"/console/embedded/shopify?id_token={_token(rt, OTHER)}")
    assert 'id="merchant-name">other' in page.get_data(as_text=True)
    assert (
        f"frame-ancestors https://{OTHER} https://admin.shopify.com"
        in page.headers["Content-Security-Policy"]
    )
    with rt.db.session() as session:
        session.execute(update(Merchant).where(Merchant.id == other).values(status="uninstalled"))
    assert_problem(
        client.get(f"/console/embedded/shopify?id_token={_token(rt, OTHER)}"), 403, "store_not_installed"
    )


def test_kinds_that_do_not_embed_the_console_are_not_found(rt: Runtime, client: FlaskClient) -> None:
    assert_problem(client.get(f"/console/embedded/feed?id_token={_token(rt)}"), 404, "not_found")
    assert_problem(client.get(f"/console/embedded/nothing?id_token={_token(rt)}"), 404, "not_found")


def test_the_admin_opening_the_installed_app_is_sent_to_the_embedded_page(
    rt: Runtime, client: FlaskClient, installed: int
) -> None:
    query = urlencode({"shop": SHOP, "embedded": "1", "id_token": _token(rt), "host": "YWRtaW4"})
    answer = client.get(f"/shopify/install?{query}")
    assert answer.status_code == 302 and answer.headers["Location"] == f"/console/embedded/shopify?{query}"


def test_a_completed_install_lands_the_merchants_browser_on_its_page(
    rt: Runtime,
    client: FlaskClient,
    shopify: Server,  # noqa: F811 (the fixture imported above)
) -> None:
    params = _grant(client, shopify)
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    done = client.get(f"/shopify/callback?{urlencode(params)}", headers=browser)
    assert done.status_code == 302 and done.headers["Location"].startswith("/console/link/")
    landed = client.get(done.headers["Location"])
    assert landed.status_code == 302 and landed.headers["Location"].startswith("/console/merchants/")
    page = client.get(landed.headers["Location"])
    assert page.status_code == 200 and SHOP in page.get_data(as_text=True)
    assert client.application.test_client().get(done.headers["Location"]).status_code == 410  # once only
