"""The OAuth redirect of a store install comes from PUBLIC_URL, never from the request's Host header (outside
a store emulator)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import SecretStr

from config.settings import Settings
from connector.app import create_app
from connector.infra.runtime import Runtime

SHOP = "storelink-demo.myshopify.com"


def _runtime(settings: Settings, **update: object) -> Runtime:
    configured = settings.model_copy(
        update={"shopify_api_key": "app-id", "shopify_api_secret": SecretStr("app-secret"), **update}
    )
    return Runtime(settings=configured, redis_url=configured.redis_url)


@pytest.mark.parametrize("path", ["/shopify/install?shop=" + SHOP, "/shopify/callback?shop=" + SHOP])
def test_without_public_url_an_install_is_refused_whatever_the_host(
    settings: Settings, redis: object, path: str
) -> None:
    rt = _runtime(settings, public_url="", shopify_admin_base_url="")
    try:
        response = create_app(rt.settings, rt).test_client().get(path, headers={"Host": "evil.example"})
        assert response.status_code == 503
        assert response.get_json()["code"] == "public_url_required"
        assert "Location" not in response.headers and b"evil.example" not in response.get_data()
        assert not rt.redis.keys("storelink:install:state:*")  # no state issued
    finally:
        rt.close()


def test_with_public_url_the_redirect_ignores_the_host_header(settings: Settings, redis: object) -> None:
    rt = _runtime(settings, public_url="https://storelink.example", shopify_admin_base_url="")
    try:
        response = (
            create_app(rt.settings, rt)
            .test_client()
            .get(f"/shopify/install?shop={SHOP}", headers={"Host": "evil.example"})
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        query = dict(parse_qsl(urlsplit(response.headers["Location"]).query))
        assert query["redirect_uri"] == "https://storelink.example/shopify/callback"
    finally:
        rt.close()


def test_against_a_store_emulator_the_request_address_is_used(settings: Settings, redis: object) -> None:
    rt = _runtime(settings, public_url="", shopify_admin_base_url="http://127.0.0.1:9")
    try:
        response = (
            create_app(rt.settings, rt)
            .test_client()
            .get(f"/shopify/install?shop={SHOP}", headers={"Host": "127.0.0.1:8000"})
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        query = dict(parse_qsl(urlsplit(response.headers["Location"]).query))
        assert query["redirect_uri"] == "http://127.0.0.1:8000/shopify/callback"
    finally:
        rt.close()
