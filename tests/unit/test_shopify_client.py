"""Shopify GraphQL client: endpoint and token, cost pacing, retries, error translation and user errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from adapters.shopify import queries
from adapters.shopify.client import ShopifyClient, raise_user_errors
from connector.domain.errors import AuthError, PermanentError, RetryableError, ValidationError
from connector.domain.ports import HttpOptions
from connector.infra import http as core_http

SHOP = "demo.myshopify.com"
URL = f"https://{SHOP}/admin/api/2026-10/graphql.json"


def cost(requested: int = 10, available: float = 1990, restore: float = 100, maximum: float = 2000) -> dict:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": requested,
            "throttleStatus": {
                "maximumAvailable": maximum,
                "currentlyAvailable": available,
                "restoreRate": restore,
            },
        }
    }


def ok(data: dict[str, Any], **extensions: Any) -> dict[str, Any]:
    return {"data": data, "extensions": cost(**extensions)}


THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": cost(requested=100, available=20, restore=100),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(core_http, "_sleep", slept.append)
    return slept


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client(clock: Clock, **kwargs: Any) -> ShopifyClient:
    return ShopifyClient(
        SHOP, "shpat_token", HttpOptions(timeout=5), clock=clock, sleep=clock.sleep, **kwargs
    )


@responses.activate
def test_posts_the_document_with_the_shop_token(clock):
    responses.post(URL, json=ok({"shop": {"currencyCode": "EUR"}}))
    data = client(clock).execute(queries.SHOP)
    assert data == {"shop": {"currencyCode": "EUR"}}
    sent = responses.calls[0].request
    assert sent.headers["X-Shopify-Access-Token"] == "shpat_token"
    assert json.loads(sent.body)["query"] == queries.SHOP
    assert "Storelink" in sent.headers["User-Agent"]


@responses.activate
def test_base_url_points_at_an_emulator(clock):
    responses.post("http://127.0.0.1:9999/admin/api/2026-10/graphql.json", json=ok({"shop": {}}))
    assert client(clock, base_url="http://127.0.0.1:9999/").execute(queries.SHOP) == {"shop": {}}


@responses.activate
def test_the_token_provider_is_asked_on_every_request(clock):
    tokens = iter(["first", "second"])
    responses.post(URL, json=ok({"shop": {}}))
    shop = ShopifyClient(SHOP, lambda: next(tokens), HttpOptions(), clock=clock, sleep=clock.sleep)
    shop.execute(queries.SHOP)
    shop.execute(queries.SHOP)
    assert [c.request.headers["X-Shopify-Access-Token"] for c in responses.calls] == ["first", "second"]


@responses.activate
def test_paces_to_avoid_throttling(clock):
    # The bucket has 10 points and refills at 50/s; the document costs 100: wait (100 - 10) / 50 = 1.8 s.
    responses.post(URL, json=ok({"shop": {}}, requested=100, available=10, restore=50))
    shop = client(clock)
    shop.execute(queries.SHOP)
    assert clock.sleeps == []
    shop.execute(queries.SHOP)
    assert clock.sleeps == [pytest.approx(1.8)]
    clock.now += 100  # a long pause refills the bucket: no wait
    shop.execute(queries.SHOP)
    assert len(clock.sleeps) == 1


@responses.activate
def test_throttled_in_http_200_is_retried_after_the_refill(clock, retry_sleeps):
    responses.post(URL, json=THROTTLED)
    responses.post(URL, json=ok({"shop": {}}))
    assert client(clock).execute(queries.SHOP) == {"shop": {}}
    assert len(responses.calls) == 2
    assert retry_sleeps == [pytest.approx(0.8)]  # (100 requested - 20 available) / 100 per second


@responses.activate
def test_throttling_that_lasts_is_a_retryable_error(clock, retry_sleeps):
    responses.post(URL, json=THROTTLED)
    with pytest.raises(RetryableError) as caught:
        client(clock).execute(queries.SHOP)
    assert caught.value.code == "throttled"
    assert len(responses.calls) == 5


@responses.activate
def test_429_honours_retry_after(clock, retry_sleeps):
    responses.post(URL, status=429, headers={"Retry-After": "2"})
    responses.post(URL, json=ok({"shop": {}}))
    client(clock).execute(queries.SHOP)
    assert retry_sleeps == [2.0]


@responses.activate
def test_5xx_and_network_failures_are_retried(clock, retry_sleeps):
    responses.post(URL, status=502)
    responses.post(URL, body=requests.ConnectionError("reset"))
    responses.post(URL, json=ok({"shop": {}}))
    assert client(clock).execute(queries.SHOP) == {"shop": {}}
    assert len(responses.calls) == 3


@responses.activate
def test_a_non_idempotent_mutation_is_not_repeated_after_an_ambiguous_failure(clock, retry_sleeps):
    responses.post(URL, status=503)
    with pytest.raises(RetryableError):
        client(clock).execute(queries.ORDER_CREATE, {"order": {}}, repeatable=False)
    assert len(responses.calls) == 1


@responses.activate
def test_a_non_idempotent_mutation_is_repeated_after_throttling(clock, retry_sleeps):
    responses.post(URL, json=THROTTLED)
    responses.post(
        URL, json=ok({"orderCreate": {"order": {"id": "gid://shopify/Order/1"}, "userErrors": []}})
    )
    payload = client(clock).mutate(queries.ORDER_CREATE, {"order": {}}, "orderCreate", repeatable=False)
    assert payload["order"]["id"] == "gid://shopify/Order/1"


def test_a_refused_connection_may_be_repeated(clock, retry_sleeps):
    shop = ShopifyClient(SHOP, "t", HttpOptions(timeout=2), base_url="http://127.0.0.1:9", clock=clock)
    with pytest.raises(RetryableError) as caught:
        shop.execute(queries.ORDER_CREATE, {"order": {}}, repeatable=False)
    assert caught.value.code == "connect"
    assert len(retry_sleeps) == 4


@responses.activate
def test_partial_data_is_refused_unless_asked_for(clock):
    body = {
        "data": {"nodes": [{"id": "gid://shopify/ProductVariant/1"}, None]},
        "errors": [{"message": "Invalid id", "path": ["nodes", 1]}],
    }
    responses.post(URL, json=body)
    shop = client(clock)
    with pytest.raises(PermanentError) as caught:
        shop.execute(queries.INVENTORY_ALL_LOCATIONS, {"ids": []})
    assert "Invalid id" in caught.value.message
    assert shop.execute(queries.INVENTORY_ALL_LOCATIONS, {"ids": []}, allow_partial=True) == body["data"]


@responses.activate
def test_access_denied_is_an_auth_error(clock):
    responses.post(
        URL, json={"data": None, "errors": [{"message": "no", "extensions": {"code": "ACCESS_DENIED"}}]}
    )
    with pytest.raises(AuthError) as caught:
        client(clock).execute(queries.SHOP)
    assert caught.value.code == "access_denied"


@responses.activate
def test_401_refreshes_the_token_once(clock):
    tokens = ["old"]

    def refresh() -> bool:
        tokens.append("new")
        return True

    responses.post(URL, status=401, body="Invalid API key or access token")
    responses.post(URL, json=ok({"shop": {}}))
    shop = ShopifyClient(SHOP, lambda: tokens[-1], HttpOptions(), on_unauthorized=refresh, clock=clock)
    assert shop.execute(queries.SHOP) == {"shop": {}}
    assert [c.request.headers["X-Shopify-Access-Token"] for c in responses.calls] == ["old", "new"]


@responses.activate
def test_a_second_401_is_an_auth_error(clock):
    calls: list[int] = []
    responses.post(URL, status=401)
    shop = ShopifyClient(
        SHOP, "t", HttpOptions(), on_unauthorized=lambda: calls.append(1) or True, clock=clock
    )
    with pytest.raises(AuthError):
        shop.execute(queries.SHOP)
    assert calls == [1]
    assert len(responses.calls) == 2


@responses.activate
def test_403_is_an_auth_error_without_refresh(clock):
    calls: list[int] = []
    responses.post(URL, status=403)
    shop = ShopifyClient(
        SHOP, "t", HttpOptions(), on_unauthorized=lambda: calls.append(1) or True, clock=clock
    )
    with pytest.raises(AuthError):
        shop.execute(queries.SHOP)
    assert calls == []


@responses.activate
def test_other_graphql_errors_are_permanent(clock):
    responses.post(URL, json={"errors": [{"message": "Field 'x' doesn't exist on type 'Shop'"}]})
    with pytest.raises(PermanentError) as caught:
        client(clock).execute("query { shop { x } }")
    assert caught.value.code == "graphql_error"
    assert not isinstance(caught.value, RetryableError)


@responses.activate
def test_a_body_that_is_not_json_is_retryable(clock, retry_sleeps):
    responses.post(URL, body="<html>busy</html>")
    with pytest.raises(RetryableError):
        client(clock).execute(queries.SHOP)


@responses.activate
def test_user_errors_keep_field_and_message(clock):
    errors = [{"code": "INVALID", "field": ["order", "lineItems", "0", "variantId"], "message": "is invalid"}]
    responses.post(URL, json=ok({"orderCreate": {"order": None, "userErrors": errors}}))
    with pytest.raises(ValidationError) as caught:
        client(clock).mutate(queries.ORDER_CREATE, {"order": {}}, "orderCreate")
    assert caught.value.details["field"] == "order.lineItems.0.variantId"
    assert caught.value.details["message"] == "is invalid"
    assert caught.value.code == "invalid"


def test_user_errors_without_a_field_are_permanent_and_some_are_retryable():
    with pytest.raises(PermanentError) as caught:
        raise_user_errors("orderCancel", [{"message": "Cannot cancel", "field": None}])
    assert not isinstance(caught.value, ValidationError)
    with pytest.raises(RetryableError):
        raise_user_errors("x", [{"code": "IDEMPOTENCY_CONCURRENT_REQUEST", "message": "busy", "field": None}])
    raise_user_errors("x", [])
    raise_user_errors("x", None)


@responses.activate
def test_bulk_results_stream_without_the_shop_token(clock):
    url = "https://storage.example.com/bulk/result.jsonl?sig=abc"
    responses.get(url, body=b'{"id":"gid://shopify/Product/1"}\n\n{"id":"gid://shopify/ProductVariant/2"}\n')
    lines = list(client(clock).stream_lines(url))
    assert lines == [b'{"id":"gid://shopify/Product/1"}', b'{"id":"gid://shopify/ProductVariant/2"}']
    assert "X-Shopify-Access-Token" not in responses.calls[0].request.headers
