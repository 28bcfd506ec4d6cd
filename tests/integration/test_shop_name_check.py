"""Shop names are checked whole: a valid name followed by a newline is refused, with or without an admin
base URL, and no install state is issued for it."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from adapters.shopify import oauth, webhook
from config.settings import Settings
from connector.infra.runtime import Runtime

SHOP = "storelink-demo.myshopify.com"


@pytest.fixture(params=["admin_base_url", "shopify_itself"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    update: dict[str, object] = {
        "shopify_api_key": "cid",
        "shopify_api_secret": SecretStr("top-secret"),
        "public_url": "http://storelink.test",
    }
    if request.param == "admin_base_url":
        update["shopify_admin_base_url"] = "http://127.0.0.1:9"
    return settings.model_copy(update=update)


@pytest.mark.parametrize("shop", [f"{SHOP}%0A", f"{SHOP}%0D%0A", f"{SHOP}%0Aevil.example"])
def test_a_shop_name_with_a_line_break_is_refused(rt: Runtime, client: FlaskClient, shop: str):
    response = client.get(f"/shopify/install?shop={shop}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "invalid_shop"
    assert rt.redis.keys("*install*") == []  # no state issued

    good = client.get(f"/shopify/install?shop={SHOP}")
    assert good.status_code == 302
    assert "\n" not in good.headers["Location"]


def test_shop_domains_are_matched_whole():
    assert oauth.valid_shop_domain(SHOP)
    assert not oauth.valid_shop_domain(SHOP + "\n")
    assert webhook.store_ref({"x-shopify-shop-domain": SHOP}) == SHOP
    assert webhook.store_ref({"x-shopify-shop-domain": "x.myshopify.com\nevil"}) is None
