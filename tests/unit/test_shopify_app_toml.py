"""config/shopify.app.toml agrees with the Shopify adapter: topics, compliance topics, scopes and addresses."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from adapters.shopify import const, oauth

TOML = Path(__file__).parents[2] / "config" / "shopify.app.toml"


def _config() -> dict:
    with TOML.open("rb") as fh:
        return tomllib.load(fh)


def test_the_app_subscribes_the_adapters_topics_and_the_compliance_topics():
    webhooks = _config()["webhooks"]
    assert webhooks["api_version"] == const.API_VERSION
    topics = [t for s in webhooks["subscriptions"] for t in s.get("topics", [])]
    compliance = [t for s in webhooks["subscriptions"] for t in s.get("compliance_topics", [])]
    assert sorted(topics) == sorted(const.WEBHOOK_TOPICS)
    assert sorted(compliance) == sorted(const.COMPLIANCE_TOPICS)
    assert {urlsplit(s["uri"]).path for s in webhooks["subscriptions"]} == {"/webhooks/shopify"}


def test_the_app_asks_for_the_required_scopes_and_calls_back_to_the_install_routes():
    config = _config()
    assert oauth.missing_scopes(config["access_scopes"]["scopes"]) == []
    assert urlsplit(config["application_url"]).path == "/shopify/install"
    assert [urlsplit(url).path for url in config["auth"]["redirect_urls"]] == ["/shopify/callback"]
