"""The Shopify adapter's install surface (connector.domain.ports.Installable), without a network."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from adapters.shopify.adapter import ShopifyAdapter
from connector.domain.errors import AuthError, PermanentError, ValidationError
from connector.domain.ports import HttpOptions, Installable, InstallApp, RefreshesCredentials
from connector.sandbox.shopify import query_hmac

SHOP = "acme.myshopify.com"
APP = InstallApp(client_id="cid", client_secret="top-secret")


def test_the_adapter_is_installable_and_refreshes_through_a_guard():
    assert isinstance(ShopifyAdapter, Installable)
    adapter = ShopifyAdapter({"shop": SHOP}, {"access_token": "t"}, HttpOptions())
    assert isinstance(adapter, RefreshesCredentials) and adapter.refresh_guard is None
    assert "top-secret" not in repr(APP)


def test_authorize_url_asks_for_the_required_scopes_at_the_shop_or_the_override():
    url = urlsplit(ShopifyAdapter.authorize_url(APP, "ACME.myshopify.com", "st", "https://app/cb"))
    query = dict(parse_qsl(url.query))
    assert (url.scheme, url.netloc, url.path) == ("https", SHOP, "/admin/oauth/authorize")
    assert query["state"] == "st" and query["redirect_uri"] == "https://app/cb"
    assert set(query["scope"].split(",")) >= {"read_products", "write_inventory", "write_orders"}
    emulated = InstallApp("cid", "s", admin_base_url="http://127.0.0.1:9")
    assert ShopifyAdapter.authorize_url(emulated, SHOP, "st", "cb").startswith("http://127.0.0.1:9/admin/")


def test_authorize_url_refuses_bad_shops_and_too_few_scopes():
    with pytest.raises(ValidationError) as bad:
        ShopifyAdapter.authorize_url(APP, "evil.example.com", "st", "cb")
    assert bad.value.code == "invalid_shop"
    with pytest.raises(PermanentError) as few:
        ShopifyAdapter.authorize_url(InstallApp("cid", "s", scopes=("read_products",)), SHOP, "st", "cb")
    assert few.value.code == "scopes_misconfigured"
    wider = InstallApp(
        "cid", "s", scopes=("read_products", "write_inventory", "read_locations", "write_orders")
    )
    assert ShopifyAdapter.authorize_url(wider, SHOP, "st", "cb")


def test_callbacks_are_checked_before_any_exchange():
    params = {"shop": SHOP, "state": "st", "timestamp": str(int(time.time()))}
    signed = {**params, "hmac": query_hmac(params, APP.client_secret)}
    assert ShopifyAdapter.callback_store_ref(APP, signed) == SHOP
    with pytest.raises(AuthError) as forged:
        ShopifyAdapter.callback_store_ref(APP, {**signed, "hmac": "0" * 64})
    assert forged.value.code == "invalid_hmac"
    with pytest.raises(ValidationError):
        ShopifyAdapter.complete_install(APP, signed, HttpOptions(timeout=1))  # no code
