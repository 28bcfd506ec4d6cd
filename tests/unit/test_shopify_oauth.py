"""Shopify OAuth helpers: install URL, shop domains, callback HMAC, token exchange and refresh, scopes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import shopify

from adapters.shopify import oauth
from connector.domain.errors import AuthError, PermanentError, RetryableError, ValidationError

SHOP = "some-shop.myshopify.com"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"


def sign(params: dict[str, str], secret: str) -> dict[str, str]:
    message = "&".join(f"{key}={value}" for key, value in sorted(params.items()))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def test_permission_url():
    url = oauth.permission_url(
        SHOP, "client-1", ["read_products", "write_orders"], "https://app/cb", "nonce-1"
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", SHOP, "/admin/oauth/authorize")
    assert parse_qs(parts.query) == {
        "client_id": ["client-1"],
        "scope": ["read_products,write_orders"],
        "redirect_uri": ["https://app/cb"],
        "state": ["nonce-1"],
    }
    with pytest.raises(ValidationError):
        oauth.permission_url("evil.com/x.myshopify.com", "c", [], "https://app/cb", "n")


@pytest.mark.parametrize(
    ("shop", "valid"),
    [
        ("some-shop.myshopify.com", True),
        ("Shop1.myshopify.com", True),
        ("-shop.myshopify.com", False),
        ("shop.myshopify.com.evil.com", False),
        ("https://shop.myshopify.com", False),
        ("shop.myshopify.com/admin", False),
        ("sh_op.myshopify.com", False),
        ("", False),
        (None, False),
    ],
)
def test_shop_domains(shop, valid):
    assert oauth.valid_shop_domain(shop) is valid


def test_callback_hmac_with_the_documented_vector(monkeypatch):
    params = {
        "code": "0907a61c0c8d55e99db179b68161bc00",
        "shop": SHOP,
        "state": "0.6784241404160823",
        "timestamp": "1337178173",
        "hmac": "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf",
    }
    assert not oauth.verify_callback(params, "hush"), "a timestamp older than a day is refused"

    class Then:
        @staticmethod
        def time() -> float:
            return 1337178173 + 60

    monkeypatch.setattr(shopify.session, "time", Then)
    assert oauth.verify_callback(params, "hush")
    assert not oauth.verify_callback({**params, "code": "other"}, "hush")
    assert not oauth.verify_callback(params, "wrong")
    assert shopify.Session.secret is None, "the library's global secret is never set"


def test_callback_checks_the_shop_and_the_hmac():
    fresh = sign({"code": "c", "shop": SHOP, "state": "s", "timestamp": str(int(time.time()))}, "secret")
    assert oauth.verify_callback(fresh, "secret")
    assert not oauth.verify_callback({k: v for k, v in fresh.items() if k != "hmac"}, "secret")
    bad_shop = sign({"code": "c", "shop": "evil.example.com", "timestamp": str(int(time.time()))}, "secret")
    assert not oauth.verify_callback(bad_shop, "secret")
    assert not oauth.verify_callback(fresh, "")


@responses.activate
def test_code_exchange_asks_for_an_expiring_token():
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "shpat_1",
            "scope": "read_products,write_orders",
            "expires_in": 3600,
            "refresh_token": "shprt_1",
            "refresh_token_expires_in": 7776000,
        },
    )
    before = datetime.now(UTC)
    tokens = oauth.exchange_code(requests.Session(), SHOP, "client-1", "secret-1", "code-1")
    sent = json.loads(responses.calls[0].request.body)
    assert sent == {"client_id": "client-1", "client_secret": "secret-1", "code": "code-1", "expiring": "1"}
    assert tokens.access_token == "shpat_1" and tokens.refresh_token == "shprt_1"
    assert tokens.scopes == {"read_products", "write_orders"}
    assert tokens.expires_at is not None and before + timedelta(seconds=3590) < tokens.expires_at
    assert (
        tokens.refresh_expires_at is not None
        and tokens.refresh_expires_at - tokens.expires_at > timedelta(days=89)
    )
    assert not tokens.expired()
    assert tokens.expired(now=before + timedelta(seconds=3580))  # within the refresh margin
    credentials = tokens.as_credentials()
    assert credentials["refresh_token"] == "shprt_1" and "access_token_expires_at" in credentials


@responses.activate
def test_exchange_against_an_emulator_base_url():
    responses.post("http://127.0.0.1:8000/admin/oauth/access_token", json={"access_token": "t", "scope": ""})
    tokens = oauth.exchange_code(requests.Session(), SHOP, "c", "s", "code", base_url="http://127.0.0.1:8000")
    assert tokens.expires_at is None, "no expires_in means a token that does not expire, never an expired one"


@responses.activate
def test_refresh_rotates_the_pair():
    responses.post(
        TOKEN_URL, json={"access_token": "shpat_2", "refresh_token": "shprt_2", "expires_in": 3600}
    )
    tokens = oauth.refresh(requests.Session(), SHOP, "c", "s", "shprt_1")
    sent = json.loads(responses.calls[0].request.body)
    assert sent["grant_type"] == "refresh_token" and sent["refresh_token"] == "shprt_1"
    assert (tokens.access_token, tokens.refresh_token) == ("shpat_2", "shprt_2")
    with pytest.raises(AuthError):
        oauth.refresh(requests.Session(), SHOP, "c", "s", "")


@responses.activate
def test_token_endpoint_failures():
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "expired"})
    with pytest.raises(AuthError) as caught:
        oauth.refresh(requests.Session(), SHOP, "c", "s", "old")
    assert caught.value.code == "invalid_grant"
    responses.replace(responses.POST, TOKEN_URL, status=503)
    with pytest.raises(RetryableError):
        oauth.refresh(requests.Session(), SHOP, "c", "s", "old")
    responses.replace(responses.POST, TOKEN_URL, json={"scope": "x"})
    with pytest.raises(PermanentError):
        oauth.refresh(requests.Session(), SHOP, "c", "s", "old")


def test_missing_scopes():
    assert oauth.missing_scopes(
        "read_products,write_orders", ["read_products", "read_orders", "read_locations"]
    ) == ["read_locations"]
    assert oauth.missing_scopes(["write_inventory"], ["read_inventory"]) == []
    assert oauth.missing_scopes("", ["read_products"]) == ["read_products"]
