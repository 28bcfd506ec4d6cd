"""Walmart client: token caching and refresh, headers, pacing, retries and both error envelopes."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
import requests
import responses

from adapters.walmart.client import WalmartClient, encode_query, error_entries, parse_replenishment
from connector.domain.errors import AuthError, NotFoundError, PermanentError, RetryableError, ValidationError
from connector.domain.ports import HttpOptions
from connector.infra import http as core_http

BASE = "https://marketplace.walmartapis.com"
TOKEN_URL = f"{BASE}/v3/token"
ITEMS_URL = f"{BASE}/v3/items"
ORDERS_URL = f"{BASE}/v3/orders"
WALL_START = 1_800_000_000.0


class Clock:
    """Monotonic and wall clocks moved only by sleeps (and by hand)."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = WALL_START
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds
        self.wall += seconds

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(core_http, "_sleep", slept.append)
    return slept


def make(clock: Clock, **kwargs: Any) -> WalmartClient:
    return WalmartClient(
        "cid",
        "csecret",
        HttpOptions(timeout=5),
        requests.Session(),
        BASE,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        wall=clock.now,
        **kwargs,
    )


def token_ok(rsps: Any = responses, token: str = "tok-1", expires_in: int = 900) -> None:  # noqa: S107
    rsps.post(TOKEN_URL, json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in})


def calls_to(url: str) -> list[Any]:
    return [call for call in responses.calls if call.request.url.split("?")[0] == url]


@responses.activate
def test_token_is_requested_with_basic_client_credentials_and_cached(clock):
    token_ok()
    responses.get(ITEMS_URL, json={"ItemResponse": []})
    client = make(clock)
    client.request("GET", "/v3/items")
    client.request("GET", "/v3/items")
    [token_call] = calls_to(TOKEN_URL)
    request = token_call.request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert request.body == b"grant_type=client_credentials"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["WM_SVC.NAME"] == "Walmart Marketplace"
    uuid.UUID(request.headers["WM_QOS.CORRELATION_ID"])
    assert len(calls_to(ITEMS_URL)) == 2


@responses.activate
def test_every_call_carries_the_token_a_fresh_correlation_id_service_name_and_accept(clock):
    token_ok()
    responses.get(ITEMS_URL, json={"ItemResponse": []})
    responses.post(f"{BASE}/v3/feeds", json={"feedId": "F1"})
    client = make(clock)
    client.request("GET", "/v3/items")
    client.request("POST", "/v3/feeds", body={"a": 1})
    resource_calls = [c.request for c in responses.calls if "/v3/token" not in c.request.url]
    ids = set()
    for request in resource_calls:
        assert request.headers["WM_SEC.ACCESS_TOKEN"] == "tok-1"
        assert request.headers["WM_SVC.NAME"] == "Walmart Marketplace"
        assert request.headers["Accept"] == "application/json"
        assert "Authorization" not in request.headers  # Basic auth on resource calls is off by default
        ids.add(str(uuid.UUID(request.headers["WM_QOS.CORRELATION_ID"])))
    assert len(ids) == 2
    assert resource_calls[1].headers["Content-Type"] == "application/json"
    assert json.loads(resource_calls[1].body) == {"a": 1}


@responses.activate
def test_basic_auth_on_resource_calls_when_configured(clock):
    token_ok()
    responses.get(ITEMS_URL, json={})
    make(clock, send_basic_auth=True).request("GET", "/v3/items")
    assert calls_to(ITEMS_URL)[0].request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_token_is_replaced_shortly_before_it_expires(clock):
    token_ok(token="tok-1")
    token_ok(token="tok-2")
    responses.get(ITEMS_URL, json={})
    client = make(clock)
    client.request("GET", "/v3/items")
    clock.advance(700)  # still inside the 12 minutes it is kept
    client.request("GET", "/v3/items")
    assert len(calls_to(TOKEN_URL)) == 1
    clock.advance(30)  # 730 s: within three minutes of the 900 s expiry
    client.request("GET", "/v3/items")
    assert len(calls_to(TOKEN_URL)) == 2
    assert calls_to(ITEMS_URL)[-1].request.headers["WM_SEC.ACCESS_TOKEN"] == "tok-2"


@responses.activate
def test_a_refused_token_is_refreshed_once_and_the_call_sent_again(clock):
    token_ok(token="tok-old")
    token_ok(token="tok-new")
    responses.get(
        ITEMS_URL,
        status=401,
        json={"error": [{"code": "INVALID_TOKEN.GMP_GATEWAY_API", "description": "Token expired"}]},
    )
    responses.get(ITEMS_URL, json={"ItemResponse": [{"sku": "A"}]})
    body = make(clock).request("GET", "/v3/items")
    assert body == {"ItemResponse": [{"sku": "A"}]}
    tokens = [c.request.headers["WM_SEC.ACCESS_TOKEN"] for c in calls_to(ITEMS_URL)]
    assert tokens == ["tok-old", "tok-new"]


@responses.activate
def test_invalid_token_on_a_400_also_refreshes(clock):
    token_ok(token="a")
    token_ok(token="b")
    responses.get(ITEMS_URL, status=400, json={"errors": [{"code": "INVALID_TOKEN", "description": "bad"}]})
    responses.get(ITEMS_URL, json={})
    assert make(clock).request("GET", "/v3/items") == {}
    assert len(calls_to(TOKEN_URL)) == 2


@responses.activate
def test_a_second_refusal_is_an_auth_error_with_the_gateway_code(clock):
    token_ok()
    responses.get(
        ITEMS_URL,
        status=401,
        json={
            "error": [
                {
                    "code": "UNAUTHORIZED.GMP_GATEWAY_API",
                    "field": "UNAUTHORIZED",
                    "description": "Unauthorized",
                    "info": "Unauthorized token or incorrect authorization header",
                }
            ]
        },
    )
    with pytest.raises(AuthError) as caught:
        make(clock).request("GET", "/v3/items")
    assert "UNAUTHORIZED.GMP_GATEWAY_API: Unauthorized" in caught.value.message
    assert "correlation id" in caught.value.message
    assert len(calls_to(ITEMS_URL)) == 2
    assert len(calls_to(TOKEN_URL)) == 2


@responses.activate
def test_a_bad_client_secret_is_a_clear_auth_error(clock, retry_sleeps):
    responses.post(
        TOKEN_URL,
        status=401,
        json={"error": [{"code": "UNAUTHORIZED.GMP_GATEWAY_API", "description": "Unauthorized"}]},
    )
    with pytest.raises(AuthError) as caught:
        make(clock).fetch_token()
    assert caught.value.code == "bad_credentials"
    assert "client id and secret" in caught.value.message and "UNAUTHORIZED" in caught.value.message
    assert len(calls_to(TOKEN_URL)) == 1 and retry_sleeps == []


@responses.activate
def test_scope_missing_403_is_an_auth_error_without_refresh(clock):
    token_ok()
    responses.get(ITEMS_URL, status=403, json={"errors": [{"code": "FORBIDDEN.GMP_GATEWAY_API"}]})
    with pytest.raises(AuthError) as caught:
        make(clock).request("GET", "/v3/items")
    assert caught.value.code == "forbidden"
    assert len(calls_to(TOKEN_URL)) == 1


@responses.activate
def test_pacing_waits_for_replenishment_when_the_token_count_hits_zero(clock):
    token_ok()
    replenish_ms = int((WALL_START + 5) * 1000)
    headers = {"X-Current-Token-Count": "0", "X-Next-Replenishment-Time": str(replenish_ms)}
    responses.get(ITEMS_URL, json={}, headers=headers)
    responses.get(ITEMS_URL, json={}, headers={"X-Current-Token-Count": "299"})
    responses.get(ORDERS_URL, json={})
    client = make(clock)
    client.request("GET", "/v3/items")
    assert clock.sleeps == []
    client.request("GET", "/v3/orders")  # another endpoint has its own bucket
    assert clock.sleeps == []
    client.request("GET", "/v3/items")
    assert clock.sleeps == [pytest.approx(5.0)]
    assert client.token_counts["GET /v3/items"] == 299
    client.request("GET", "/v3/items")
    assert len(clock.sleeps) == 1


@responses.activate
def test_pacing_longer_than_allowed_fails_before_sending(clock):
    token_ok()
    iso = "2027-01-15T08:05:00Z"  # WALL_START + 300 s
    responses.get(
        ITEMS_URL, json={}, headers={"X-Current-Token-Count": "0", "X-Next-Replenishment-Time": iso}
    )
    client = make(clock, max_pacing_seconds=60)
    client.request("GET", "/v3/items")
    with pytest.raises(RetryableError) as caught:
        client.request("GET", "/v3/items")
    assert caught.value.code == "paced" and caught.value.retry_after and caught.value.retry_after > 60
    assert len(calls_to(ITEMS_URL)) == 1


@responses.activate
def test_429_honours_retry_after_then_succeeds(clock, retry_sleeps):
    token_ok()
    responses.get(
        ITEMS_URL,
        status=429,
        headers={"Retry-After": "7"},
        json={"errors": [{"code": "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API"}]},
    )
    responses.get(ITEMS_URL, json={"ok": True})
    client = make(clock)
    assert client.request("GET", "/v3/items") == {"ok": True}
    assert retry_sleeps == [7.0]
    assert len(calls_to(ITEMS_URL)) == 2


@responses.activate
def test_429_beyond_what_is_slept_in_process_goes_to_the_job_layer(clock, retry_sleeps):
    token_ok()
    responses.get(ITEMS_URL, status=429, headers={"Retry-After": "600"}, json={})
    with pytest.raises(RetryableError) as caught:
        make(clock).request("GET", "/v3/items")
    assert caught.value.code == "rate_limited" and caught.value.retry_after == 600
    assert retry_sleeps == [] and len(calls_to(ITEMS_URL)) == 1


@responses.activate
def test_5xx_is_retried_with_backoff_and_gives_up_bounded(clock, retry_sleeps):
    token_ok()
    responses.get(ITEMS_URL, status=503, body=b"")
    responses.get(
        ITEMS_URL, status=500, json={"errors": [{"code": "SYSTEM_ERROR.GMP_GATEWAY_API", "description": "x"}]}
    )
    responses.get(ITEMS_URL, json={"done": 1})
    assert make(clock).request("GET", "/v3/items") == {"done": 1}
    assert len(retry_sleeps) == 2

    responses.replace(responses.GET, ITEMS_URL, status=502, body=b"bad gateway")
    with pytest.raises(RetryableError) as caught:
        make(clock).request("GET", "/v3/items")
    assert caught.value.code == "walmart_unavailable"
    assert len(calls_to(ITEMS_URL)) == 3 + 4


@responses.activate
def test_network_errors_are_retried(clock, retry_sleeps):
    token_ok()
    responses.get(ITEMS_URL, body=requests.ConnectionError("reset"))
    responses.get(ITEMS_URL, json={"x": 1})
    assert make(clock).request("GET", "/v3/items") == {"x": 1}
    assert len(retry_sleeps) == 1


@responses.activate
def test_4xx_is_not_retried_and_keeps_walmart_code_and_description(clock, retry_sleeps):
    token_ok()
    responses.put(
        f"{BASE}/v3/inventory",
        status=400,
        json={
            "errors": [
                {
                    "code": "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API",
                    "field": "quantity",
                    "description": "Quantity is invalid",
                    "severity": "ERROR",
                    "category": "DATA",
                }
            ]
        },
    )
    with pytest.raises(ValidationError) as caught:
        make(clock).request("PUT", "/v3/inventory", params={"sku": "A"}, body={"sku": "A"})
    error = caught.value
    assert "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API: Quantity is invalid" in error.message
    assert error.details["field"] == "quantity"
    assert error.details["store_code"] == "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API"
    uuid.UUID(str(error.details["correlation_id"]))
    assert retry_sleeps == [] and len(calls_to(f"{BASE}/v3/inventory")) == 1


@responses.activate
def test_404_is_not_found_and_message_variant_is_read(clock):
    token_ok()
    responses.get(
        ORDERS_URL,
        status=404,
        json={"errors": [{"code": "CONTENT_NOT_FOUND.GMP_ORDER_API", "message": "No orders"}]},
    )
    with pytest.raises(NotFoundError) as caught:
        make(clock).request("GET", "/v3/orders")
    assert "CONTENT_NOT_FOUND.GMP_ORDER_API: No orders" in caught.value.message


@responses.activate
def test_other_4xx_is_permanent(clock):
    token_ok()
    responses.post(f"{BASE}/v3/feeds", status=415, json={"errors": [{"code": "UNSUPPORTED_MEDIA_TYPE"}]})
    with pytest.raises(PermanentError) as caught:
        make(clock).request("POST", "/v3/feeds", body={})
    assert caught.value.code == "http_415" and not isinstance(caught.value, ValidationError | AuthError)


@responses.activate
def test_multichannel_fail_status_is_an_error_even_on_200(clock):
    token_ok()
    responses.post(
        f"{BASE}/v3/fulfillment/orders-fulfillments",
        json={
            "status": "FAIL",
            "errors": [
                {
                    "code": "ERR_EXT_DATA_0021001",
                    "description": "The payload structure is not valid",
                    "info": "[Error [code=400.WSAAS.106, field=orderChannelId]]",
                    "severity": "ERROR",
                    "category": "REQUEST",
                }
            ],
        },
    )
    with pytest.raises(ValidationError) as caught:
        make(clock).request("POST", "/v3/fulfillment/orders-fulfillments", body={}, repeatable=False)
    assert "ERR_EXT_DATA_0021001: The payload structure is not valid" in caught.value.message


@responses.activate
def test_a_non_repeatable_call_is_not_resent_after_a_5xx_but_is_after_a_429(clock, retry_sleeps):
    url = f"{BASE}/v3/fulfillment/orders-fulfillments"
    token_ok()
    responses.post(url, status=500, json={})
    with pytest.raises(RetryableError):
        make(clock).request("POST", "/v3/fulfillment/orders-fulfillments", body={}, repeatable=False)
    assert len(calls_to(url)) == 1

    responses.replace(responses.POST, url, status=429, headers={"Retry-After": "1"}, json={})
    responses.add(responses.POST, url, json={"status": "ACCEPTED"})
    answer = make(clock).request("POST", "/v3/fulfillment/orders-fulfillments", body={}, repeatable=False)
    assert answer == {"status": "ACCEPTED"}


@responses.activate
def test_params_are_percent_encoded_as_walmart_asks(clock):
    token_ok()
    responses.get(f"{BASE}/v3/inventory", json={})
    make(clock).request("GET", "/v3/inventory", params={"sku": "a b/c#1@x", "shipNode": None})
    url = calls_to(f"{BASE}/v3/inventory")[0].request.url
    assert url.endswith("/v3/inventory?sku=a%20b%2Fc%231%40x")


@responses.activate
def test_a_raw_query_string_is_sent_verbatim(clock):
    token_ok()
    responses.get(ORDERS_URL, json={})
    cursor = "?limit=10&hasMoreElements=true&soIndex=31&poIndex=10&createdStartDate=2019-09-17T18:47:03.703Z"
    make(clock).request("GET", "/v3/orders", query=cursor)
    assert calls_to(ORDERS_URL)[0].request.url == ORDERS_URL + cursor


@responses.activate
def test_a_non_json_answer_is_retryable(clock, retry_sleeps):
    token_ok()
    responses.get(ITEMS_URL, body=b"<ItemResponse/>")
    with pytest.raises(RetryableError) as caught:
        make(clock).request("GET", "/v3/items")
    assert caught.value.code == "bad_response"


def test_failures_are_logged_with_the_correlation_id(clock, caplog, retry_sleeps):
    with responses.RequestsMock() as rsps:
        token_ok(rsps)
        rsps.get(ITEMS_URL, status=400, json={"errors": [{"code": "INVALID_REQUEST_PARAM"}]})
        with pytest.raises(ValidationError) as caught:
            make(clock).request("GET", "/v3/items")
    records = [r for r in caplog.records if r.getMessage() == "walmart request failed"]
    assert records and records[0].correlation_id == caught.value.details["correlation_id"]


def test_replenishment_time_formats():
    now = WALL_START
    assert parse_replenishment(str(int((now + 3) * 1000)), now) == pytest.approx(now + 3)
    assert parse_replenishment(str(int(now + 4)), now) == pytest.approx(now + 4)
    assert parse_replenishment("12", now) == pytest.approx(now + 12)
    assert parse_replenishment("2027-01-15T08:00:00Z", now) == pytest.approx(1_799_971_200.0 + 28_800)
    assert parse_replenishment("soon", now) is None
    assert parse_replenishment(None, now) is None


def test_error_entries_read_both_envelopes():
    assert error_entries({"errors": [{"code": "A"}]}) == [{"code": "A"}]
    assert error_entries({"error": [{"code": "B"}]}) == [{"code": "B"}]
    assert error_entries({"errors": {"error": [{"code": "C"}]}}) == [{"code": "C"}]
    assert error_entries({"status": "OK"}) == []
    assert error_entries([1, 2]) == []


def test_encode_query_leaves_out_none():
    assert encode_query({"a": "x y", "b": None, "c": 3}) == "a=x%20y&c=3"
    assert re.fullmatch(r"nextCursor=%2A", encode_query({"nextCursor": "*"}))


@responses.activate
def test_a_403_for_what_was_asked_is_permanent_not_an_auth_failure(clock):
    token_ok()
    url = f"{BASE}/v3/fulfillment/orders-fulfillments"
    responses.post(url, status=403, json={"status": "FAIL", "errors": [{"code": "INVALID_MCS_REQUEST"}]})
    with pytest.raises(PermanentError) as caught:
        make(clock).request("POST", "/v3/fulfillment/orders-fulfillments", body={}, repeatable=False)
    assert not isinstance(caught.value, AuthError) and "INVALID_MCS_REQUEST" in caught.value.message
