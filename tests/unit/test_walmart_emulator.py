"""The Walmart Marketplace emulator: tokens and auth failures, item cursor paging, inventory (single, multi-node
and bulk feeds), Multichannel orders, Walmart orders paging, signed notifications, throttling and faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connector.sandbox.walmart import (
    ApiFault,
    RateLimit,
    WalmartEmulator,
    WebhookFault,
    serve,
    sign,
)

CLIENT_ID = "wm-sandbox-client"
CLIENT_SECRET = "wm-sandbox-secret"
MCS = "/v3/fulfillment/orders-fulfillments"
HEADER = {"headerAttributes": {"martId": "202", "buId": "0"}}


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """Records notification POSTs on 127.0.0.1."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/walmart/events"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self._cond:
            self.received.append((dict(request.headers), request.get_data()))
            self._cond.notify_all()
        answer = orjson.dumps({"access_token": "receiver-token", "expires_in": 3600})
        return Response(answer, mimetype="application/json")(environ, start_response)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[WalmartEmulator]:
    found = WalmartEmulator(clock=clock, webhook_retry_delays=(), feed_delay=60, mcs_delay=30)
    yield found
    found.close()


@pytest.fixture
def client(emulator: WalmartEmulator) -> FlaskClient:
    return emulator.app.test_client()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def basic(user: str = CLIENT_ID, password: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call_headers(token: str, **extra: str) -> dict[str, str]:
    return {
        "WM_SEC.ACCESS_TOKEN": token,
        "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
        "WM_SVC.NAME": "Walmart Marketplace",
        "Accept": "application/json",
        **extra,
    }


def get_token(client: FlaskClient) -> str:
    response = client.post(
        "/v3/token",
        data={"grant_type": "client_credentials"},
        headers={
            "Authorization": basic(),
            "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
            "WM_SVC.NAME": "Walmart Marketplace",
            "Accept": "application/json",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["access_token"]
    return token


def body(response: Any) -> Any:
    return orjson.loads(response.get_data() if hasattr(response, "get_data") else response.content)


def mcs_order(channel_id: str, seller_order_id: str, lines: list[tuple[str, str, int]]) -> dict[str, Any]:
    contact = {
        "name": {"firstName": "Ada", "lastName": "Lovelace"},
        "phone": "2125550100",
        "email": "a@example.com",
    }
    return {
        "header": HEADER,
        "payload": {
            "orderChannelId": channel_id,
            "sellerOrderId": seller_order_id,
            "orderPlacedTime": "2026-09-21T10:00:00.000Z",
            "needsConfirmation": False,
            "partialFulfillments": False,
            "customer": {"contact": contact},
            "orderItems": [
                {
                    "sellerLineId": line_id,
                    "fulfillmentType": "DELIVERY",
                    "shippingMethod": "STANDARD",
                    "itemDetail": {"sku": sku, "description": "thing"},
                    "qty": {"unitOfMeasure": "EACH", "measurementValue": qty},
                    "shippingTo": {
                        "contact": contact,
                        "address": {
                            "line1": "1 Main St",
                            "city": "New York",
                            "state": "NY",
                            "country": "USA",
                            "zip": "10017",
                            "addressType": "RESIDENTIAL",
                        },
                    },
                    "chargeDetails": [
                        {
                            "chargeCategory": "PRODUCT",
                            "chargeName": "Sale Price",
                            "chargePerUnit": {"currencyAmount": 0, "currencyUnit": "USD"},
                            "taxDetails": {"taxPerLine": {"currencyAmount": 0, "currencyUnit": "USD"}},
                        }
                    ],
                }
                for line_id, sku, qty in lines
            ],
        },
    }


# --- tokens and authentication ---------------------------------------------------------------------------


def test_token_is_issued_for_client_credentials_with_the_configured_lifetime(clock: FakeClock) -> None:
    emulator = WalmartEmulator(clock=clock, token_ttl=60)
    try:
        client = emulator.app.test_client()
        response = client.post(
            "/v3/token",
            data={"grant_type": "client_credentials"},
            headers={
                "Authorization": basic(),
                "WM_QOS.CORRELATION_ID": "c-1",
                "WM_SVC.NAME": "Walmart Marketplace",
            },
        )
        document = body(response)
        assert response.status_code == 200
        assert document["token_type"] == "Bearer" and document["expires_in"] == 60
        assert response.headers["WM_QOS.CORRELATION_ID"] == "c-1"
        ok = client.get("/v3/items", headers=call_headers(document["access_token"]))
        assert ok.status_code == 200
        clock.advance(61)
        expired = client.get("/v3/items", headers=call_headers(document["access_token"]))
        assert expired.status_code == 401
        assert body(expired)["error"][0]["code"] == "INVALID_TOKEN.GMP_GATEWAY_API"
    finally:
        emulator.close()


def test_token_refuses_bad_credentials_and_grant_types(client: FlaskClient) -> None:
    headers = {"WM_QOS.CORRELATION_ID": "c", "WM_SVC.NAME": "Walmart Marketplace"}
    wrong = client.post(
        "/v3/token",
        data={"grant_type": "client_credentials"},
        headers={**headers, "Authorization": basic(password="x")},
    )
    assert wrong.status_code == 401
    error = body(wrong)["error"][0]
    assert error["code"] == "UNAUTHORIZED.GMP_GATEWAY_API" and error["severity"] == "ERROR"
    missing = client.post("/v3/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert missing.status_code == 401
    no_grant = client.post("/v3/token", data={}, headers={**headers, "Authorization": basic()})
    assert no_grant.status_code == 400 and body(no_grant)["errors"][0]["field"] == "grant_type"
    other = client.post(
        "/v3/token", data={"grant_type": "password"}, headers={**headers, "Authorization": basic()}
    )
    assert other.status_code == 400 and body(other)["errors"][0]["code"] == "INVALID_REQUEST_PARAM"
    no_correlation = client.post(
        "/v3/token", data={"grant_type": "client_credentials"}, headers={"Authorization": basic()}
    )
    assert no_correlation.status_code == 400
    assert body(no_correlation)["errors"][0]["code"] == "MISSING_REQUEST_HEADER"


def test_resource_calls_check_token_and_required_headers(client: FlaskClient) -> None:
    token = get_token(client)
    no_token = client.get(
        "/v3/items", headers={"WM_QOS.CORRELATION_ID": "c", "WM_SVC.NAME": "Walmart Marketplace"}
    )
    assert (
        no_token.status_code == 401 and body(no_token)["error"][0]["code"] == "UNAUTHORIZED.GMP_GATEWAY_API"
    )
    unknown = client.get("/v3/items", headers=call_headers("eyJnotissued"))
    assert unknown.status_code == 401 and body(unknown)["error"][0]["code"] == "UNAUTHORIZED.GMP_GATEWAY_API"
    for missing in ("WM_QOS.CORRELATION_ID", "WM_SVC.NAME"):
        headers = call_headers(token)
        del headers[missing]
        answer = client.get("/v3/items", headers=headers)
        assert answer.status_code == 400
        assert body(answer)["errors"][0] == {
            "code": "MISSING_REQUEST_HEADER",
            "field": missing,
            "description": f"Missing required header {missing}",
            "info": f"Missing required header {missing}",
            "severity": "ERROR",
            "category": "REQUEST",
            "causes": [],
            "errorIdentifiers": {},
        }
    xml = client.get("/v3/items", headers=call_headers(token, Accept="application/xml"))
    assert xml.status_code == 406 and body(xml)["errors"][0]["code"] == "INVALID_ACCEPT_TYPE"
    detail = client.get("/v3/token/detail", headers=call_headers(token))
    assert body(detail)["is_valid"] is True and body(detail)["scopes"]["inventory"] == "full_access"
    assert client.get("/v3/nothing", headers=call_headers(token)).status_code == 404
    assert (
        body(client.delete("/v3/items", headers=call_headers(token)))["errors"][0]["code"]
        == "METHOD_NOT_ALLOWED"
    )


# --- items -----------------------------------------------------------------------------------------------


def test_items_cursor_pages_20000_items_to_the_end_over_http() -> None:
    with serve() as server:
        server.store.seed_catalog(20_000, unpublished_every=9)
        token = server.emulator.issue_token()
        session = requests.Session()
        started = time.monotonic()
        cursor: str | None = "*"
        seen: list[str] = []
        short_pages_before_end = 0
        pages = 0
        while cursor:
            pages += 1
            response = session.get(
                f"{server.url}/v3/items",
                params={"nextCursor": cursor, "limit": "200"},
                headers=call_headers(token),
                timeout=10,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["totalItems"] == 20_000
            cursor = page.get("nextCursor")
            if cursor and len(page["ItemResponse"]) < 200:
                short_pages_before_end += 1
            seen.extend(item["sku"] for item in page["ItemResponse"])
        elapsed = time.monotonic() - started
        assert len(seen) == len(set(seen)) == 20_000
        assert short_pages_before_end > 0
        assert elapsed < 10
        first = server.store.item(seen[0])
        assert first is not None
        document = first.to_json()
        assert orjson.loads(document["shelf"])[0] == "Home Page" and isinstance(document["shelf"], str)
        assert sum(1 for sku in seen[:50] if server.store.items[sku].upc == "") == 10
        assert server.store.requests["get_items"] == pages


def test_item_page_shape_filters_and_single_item(client: FlaskClient, emulator: WalmartEmulator) -> None:
    emulator.store.seed_catalog(30, unpublished_every=3)
    token = get_token(client)
    page = body(
        client.get(
            "/v3/items",
            query_string={"publishedStatus": "UNPUBLISHED", "limit": 4},
            headers=call_headers(token),
        )
    )
    assert page["totalItems"] == 10
    first = page["ItemResponse"][0]
    assert set(first) >= {
        "mart",
        "sku",
        "wpid",
        "upc",
        "gtin",
        "productName",
        "shelf",
        "productType",
        "price",
    }
    assert first["unpublishedReasons"]["reason"] and first["lifecycleStatus"] == "ACTIVE"
    assert first["price"]["currency"] == "USD" and first["mart"] == "WALMART_US"
    skus = [i["sku"] for i in page["ItemResponse"]]
    while page.get("nextCursor"):
        page = body(
            client.get(
                "/v3/items", query_string={"nextCursor": page["nextCursor"]}, headers=call_headers(token)
            )
        )
        skus += [i["sku"] for i in page["ItemResponse"]]
        assert all(i["publishedStatus"] == "UNPUBLISHED" for i in page["ItemResponse"])
    assert len(skus) == 10
    one = client.get(f"/v3/items/{skus[0]}", headers=call_headers(token))
    assert body(one)["ItemResponse"][0]["sku"] == skus[0]
    missing = client.get("/v3/items/NOPE", headers=call_headers(token))
    assert missing.status_code == 404 and body(missing)["errors"][0]["code"] == "CONTENT_NOT_FOUND"
    bad = client.get("/v3/items", query_string={"nextCursor": "not-base64!"}, headers=call_headers(token))
    assert bad.status_code == 400 and body(bad)["errors"][0]["field"] == "nextCursor"


# --- inventory -------------------------------------------------------------------------------------------


def test_single_node_inventory_round_trip_with_percent_encoded_skus_over_http() -> None:
    with serve(mcs_delay=0) as server:
        sku = "A/B C&D+#1"
        server.store.add_item(sku, quantity_by_node={server.store.default_ship_node: 3})
        token = server.emulator.issue_token()
        url = f"{server.url}/v3/inventory?sku={quote(sku, safe='')}"
        put = requests.put(
            url,
            json={"sku": sku, "quantity": {"unit": "EACH", "amount": 42}},
            headers=call_headers(token),
            timeout=5,
        )
        assert put.status_code == 200, put.text
        assert put.json() == {"sku": sku, "quantity": {"unit": "EACH", "amount": 42}}
        got = requests.get(url, headers=call_headers(token), timeout=5)
        assert got.json() == {"sku": sku, "quantity": {"unit": "EACH", "amount": 42}}
        nodes = requests.get(
            f"{server.url}/v3/inventories/{quote(sku, safe='')}", headers=call_headers(token), timeout=5
        ).json()
        assert nodes["sku"] == sku and nodes["nodes"][0]["availToSellQty"] == {"unit": "EACH", "amount": 42}
        bad = requests.put(
            url,
            json={"sku": sku, "quantity": {"unit": "EACH", "amount": -1}},
            headers=call_headers(token),
            timeout=5,
        )
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "quantity.amount"
        unknown = requests.get(
            f"{server.url}/v3/inventory?sku=missing", headers=call_headers(token), timeout=5
        )
        assert unknown.status_code == 404


def test_multi_node_inventory_reports_per_node_status_and_reservations(
    client: FlaskClient, emulator: WalmartEmulator
) -> None:
    store = emulator.store
    store.add_item("MN-1", quantity_by_node={"1000005050": 5})
    token = get_token(client)
    put = client.put(
        "/v3/inventories/MN-1",
        json={
            "inventories": {
                "nodes": [
                    {"shipNode": "1000005051", "inputQty": {"unit": "EACH", "amount": 88}},
                    {"shipNode": "999", "inputQty": {"unit": "EACH", "amount": 1}},
                ]
            }
        },
        headers=call_headers(token),
    )
    result = body(put)
    assert result["sku"] == "MN-1"
    assert result["nodes"][0] == {"shipNode": "1000005051", "status": "Success"}
    assert (
        result["nodes"][1]["status"] == "Failure" and result["nodes"][1]["errors"][0]["field"] == "shipNode"
    )
    store.add_order([("MN-1", 2)])
    nodes = {
        n["shipNode"]: n
        for n in body(client.get("/v3/inventories/MN-1", headers=call_headers(token)))["nodes"]
    }
    assert nodes["1000005050"]["inputQty"]["amount"] == 5
    assert nodes["1000005050"]["reservedQty"]["amount"] == 2
    assert nodes["1000005050"]["availToSellQty"]["amount"] == 3
    assert nodes["1000005051"]["availToSellQty"]["amount"] == 88
    one = body(
        client.get(
            "/v3/inventories/MN-1", query_string={"shipNode": "1000005051"}, headers=call_headers(token)
        )
    )
    assert [n["shipNode"] for n in one["nodes"]] == ["1000005051"]
    store.seed_catalog(12)
    cursor, seen = None, []
    cursors = set()
    while True:
        page = body(
            client.get(
                "/v3/inventories",
                query_string={"limit": 5, "nextCursor": cursor or ""},
                headers=call_headers(token),
            )
        )
        seen += [row["sku"] for row in page["elements"]["inventories"]]
        cursor = page["meta"].get("nextCursor")
        if not cursor:
            break
        cursors.add(cursor)
    assert len(seen) == 13 == page["meta"]["totalCount"] and len(cursors) == 2


def test_inventory_feed_is_processed_after_a_delay_with_per_item_results(
    client: FlaskClient, emulator: WalmartEmulator, clock: FakeClock
) -> None:
    emulator.store.seed_catalog(3, quantity=1)
    token = get_token(client)
    feed = {
        "InventoryHeader": {"version": "1.4"},
        "Inventory": [
            {"sku": "WM-SKU-000000", "quantity": {"unit": "EACH", "amount": 10}},
            {"sku": "GHOST", "quantity": {"unit": "EACH", "amount": 4}},
            {"sku": "WM-SKU-000002", "quantity": {"unit": "EACH", "amount": 0}},
        ],
    }
    submitted = client.post(
        "/v3/feeds", query_string={"feedType": "inventory"}, json=feed, headers=call_headers(token)
    )
    feed_id = body(submitted)["feedId"]
    assert "@" in feed_id
    status_url = f"/v3/feeds/{quote(feed_id, safe='')}"
    received = body(client.get(status_url, headers=call_headers(token)))
    assert received["feedStatus"] == "RECEIVED" and received["itemsProcessing"] == 3
    clock.advance(31)
    assert body(client.get(status_url, headers=call_headers(token)))["feedStatus"] == "INPROGRESS"
    assert emulator.store.get_quantity("WM-SKU-000000") == 1
    clock.advance(30)
    done = body(client.get(status_url, query_string={"includeDetails": "true"}, headers=call_headers(token)))
    assert done["feedStatus"] == "PROCESSED"
    assert (done["itemsReceived"], done["itemsSucceeded"], done["itemsFailed"]) == (3, 2, 1)
    results = {row["sku"]: row for row in done["itemDetails"]["itemIngestionStatus"]}
    assert results["WM-SKU-000000"]["ingestionStatus"] == "SUCCESS"
    assert results["GHOST"]["ingestionStatus"] == "DATA_ERROR"
    assert results["GHOST"]["ingestionErrors"]["ingestionError"][0]["field"] == "sku"
    assert emulator.store.get_quantity("WM-SKU-000000") == 10
    assert emulator.store.get_quantity("WM-SKU-000002") == 0
    multi = {
        "inventoryHeader": {"version": "1.5"},
        "inventory": [
            {
                "sku": "WM-SKU-000001",
                "shipNodes": [{"shipNode": "1000005051", "quantity": {"unit": "EACH", "amount": 7}}],
            }
        ],
    }
    feed_id = body(
        client.post(
            "/v3/feeds", query_string={"feedType": "MP_INVENTORY"}, json=multi, headers=call_headers(token)
        )
    )["feedId"]
    clock.advance(61)
    assert body(client.get(f"/v3/feeds/{feed_id}", headers=call_headers(token)))["itemsSucceeded"] == 1
    assert emulator.store.get_quantity("WM-SKU-000001", "1000005051") == 7


def test_feed_limit_per_hour_answers_429_with_retry_after(clock: FakeClock) -> None:
    emulator = WalmartEmulator(clock=clock, feed_limit_per_hour=2)
    try:
        client = emulator.app.test_client()
        token = emulator.issue_token(ttl=86_400)
        feed = {"InventoryHeader": {"version": "1.4"}, "Inventory": []}
        for _ in range(2):
            ok = client.post("/v3/feeds?feedType=inventory", json=feed, headers=call_headers(token))
            assert ok.status_code == 200
            clock.advance(600)
        refused = client.post("/v3/feeds?feedType=inventory", json=feed, headers=call_headers(token))
        assert refused.status_code == 429
        assert body(refused)["errors"][0]["code"] == "REQUEST_THRESHOLD_VIOLATED"
        assert refused.headers["Retry-After"] == "2400"
        other_type = client.post(
            "/v3/feeds?feedType=MP_INVENTORY", json={"inventory": []}, headers=call_headers(token)
        )
        assert other_type.status_code == 200
        clock.advance(2400)
        assert (
            client.post("/v3/feeds?feedType=inventory", json=feed, headers=call_headers(token)).status_code
            == 200
        )
    finally:
        emulator.close()


# --- Multichannel Solutions ------------------------------------------------------------------------------


def test_mcs_order_lifecycle_duplicate_and_cancel(
    client: FlaskClient, emulator: WalmartEmulator, clock: FakeClock
) -> None:
    store = emulator.store
    store.add_item("MCS-1", quantity_by_node={store.default_ship_node: 5})
    token = get_token(client)
    created = client.post(
        f"{MCS}/channel-details",
        json={
            "header": HEADER,
            "payload": {"mcsDetails": [{"orderChannelName": "Live shop", "active": True}]},
        },
        headers=call_headers(token),
    )
    channel_id = body(created)["payload"]["mcsDetails"][0]["orderChannelId"]
    listed = body(client.get(f"{MCS}/channel-details", headers=call_headers(token)))
    assert [c["orderChannelId"] for c in listed["payload"]["mcsDetails"]] == [channel_id]

    accepted = client.post(
        MCS, json=mcs_order(channel_id, "VID000123", [("1", "MCS-1", 2)]), headers=call_headers(token)
    )
    answer = body(accepted)
    assert accepted.status_code == 200 and answer["status"] == "ACCEPTED"
    request_id = answer["payload"]["requestId"]
    pending = body(
        client.get(f"{MCS}/status", query_string={"orderNumber": "VID000123"}, headers=call_headers(token))
    )
    assert pending["payload"][0]["status"] == "RECEIVED"

    duplicate = client.post(
        MCS, json=mcs_order(channel_id, "VID000123", [("1", "MCS-1", 2)]), headers=call_headers(token)
    )
    assert duplicate.status_code == 400
    assert body(duplicate)["status"] == "FAIL"
    assert body(duplicate)["errors"][0]["code"] == "INVALID_SELLER_ORDER_ID"
    assert body(duplicate)["errors"][0]["info"] == "DUPLICATE_SELLER_ORDER_ID"
    assert store.fulfilment_orders_created == 1 and store.fulfilment_attempts == 2

    clock.advance(30)
    by_request = body(
        client.get(f"{MCS}/status", query_string={"requestId": request_id}, headers=call_headers(token))
    )
    order = by_request["payload"][0]
    assert order["sellerOrderId"] == "VID000123" and order["status"] == "ACCEPTED"
    info = order["orderLines"][0]["orderLineQuantityInfo"][0]
    assert info["status"] == "PROCESSING" and info["statusDescription"] == "SUCCESSFULLY_SOURCED"
    assert store.total_available("MCS-1") == 3

    cancelled = client.post(
        f"{MCS}/cancel",
        json={
            "header": HEADER,
            "payload": {
                "sellerOrderId": "VID000123",
                "orderItems": [
                    {"sellerLineId": "1", "qty": {"unitOfMeasure": "EACH", "measurementValue": 2}}
                ],
            },
        },
        headers=call_headers(token),
    )
    assert body(cancelled)["status"] == "ACCEPTED"
    after = body(
        client.get(f"{MCS}/status", query_string={"orderNumber": "VID000123"}, headers=call_headers(token))
    )
    assert after["payload"][0]["status"] == "CANCELLED"
    assert store.total_available("MCS-1") == 5
    ranged = body(
        client.get(f"{MCS}/status", query_string={"fromOrderDate": "2026-09-01"}, headers=call_headers(token))
    )
    assert [o["sellerOrderId"] for o in ranged["payload"]] == ["VID000123"]
    missing = client.get(f"{MCS}/status", query_string={"orderNumber": "NOPE1"}, headers=call_headers(token))
    assert missing.status_code == 404 and body(missing)["errors"][0]["code"] == "OS_NOT_FOUND_ERROR"


@pytest.mark.parametrize(
    ("seller_order_id", "line_id", "field"),
    [
        ("VID-000123", "1", "sellerOrderId"),
        ("V" * 19, "1", "sellerOrderId"),
        ("VID1", "1234567", "orderItems[0].sellerLineId"),
    ],
)
def test_mcs_create_validates_ids(
    client: FlaskClient, emulator: WalmartEmulator, seller_order_id: str, line_id: str, field: str
) -> None:
    emulator.store.add_item("MCS-1", quantity_by_node={emulator.store.default_ship_node: 5})
    channel = emulator.store.add_channel()
    token = get_token(client)
    refused = client.post(
        MCS,
        json=mcs_order(channel.order_channel_id, seller_order_id, [(line_id, "MCS-1", 1)]),
        headers=call_headers(token),
    )
    assert refused.status_code == 400
    assert body(refused)["status"] == "FAIL" and body(refused)["errors"][0]["field"] == field
    unknown_channel = client.post(
        MCS, json=mcs_order("NOPE", "VID1", [("1", "MCS-1", 1)]), headers=call_headers(token)
    )
    assert body(unknown_channel)["errors"][0]["field"] == "orderChannelId"
    assert emulator.store.fulfilment_orders_created == 0


def test_mcs_rejects_unknown_skus_and_short_stock(
    client: FlaskClient, emulator: WalmartEmulator, clock: FakeClock
) -> None:
    emulator.store.add_item("LOW", quantity_by_node={emulator.store.default_ship_node: 1})
    channel = emulator.store.add_channel().order_channel_id
    token = get_token(client)
    for number, sku in (("A1", "GHOST"), ("A2", "LOW")):
        assert (
            client.post(
                MCS, json=mcs_order(channel, number, [("1", sku, 2)]), headers=call_headers(token)
            ).status_code
            == 200
        )
    clock.advance(31)
    statuses = {}
    for number in ("A1", "A2"):
        order = body(
            client.get(f"{MCS}/status", query_string={"orderNumber": number}, headers=call_headers(token))
        )["payload"][0]
        statuses[number] = (
            order["status"],
            order["orderLines"][0]["orderLineQuantityInfo"][0]["statusDescription"],
        )
    assert statuses == {"A1": ("REJECTED", "ITEM_NOT_FOUND"), "A2": ("REJECTED", "OUT_OF_STOCK")}
    assert emulator.store.total_available("LOW") == 1


def test_mcs_endpoints_refuse_sellers_not_enrolled(clock: FakeClock) -> None:
    emulator = WalmartEmulator(clock=clock, mcs_enrolled=False)
    try:
        client = emulator.app.test_client()
        token = emulator.issue_token()
        for response in (
            client.get(f"{MCS}/channel-details", headers=call_headers(token)),
            client.post(MCS, json=mcs_order("X", "VID1", [("1", "S", 1)]), headers=call_headers(token)),
            client.get(f"{MCS}/status", query_string={"orderNumber": "VID1"}, headers=call_headers(token)),
        ):
            assert response.status_code == 403
            assert body(response) == {
                "status": "FAIL",
                "errors": [
                    {
                        "code": "INVALID_MCS_REQUEST",
                        "field": "partnerId",
                        "description": "Seller is not onboarded to Multichannel Solutions",
                        "info": "partnerId 10000682332 is not enabled for MCS",
                        "severity": "ERROR",
                        "category": "REQUEST",
                    }
                ],
            }
    finally:
        emulator.close()


# --- orders ----------------------------------------------------------------------------------------------


def test_orders_page_with_whole_query_string_cursor(
    client: FlaskClient, emulator: WalmartEmulator, clock: FakeClock
) -> None:
    store = emulator.store
    store.seed_catalog(2, quantity=1000)
    for minutes in range(25):
        store.add_order(
            [("WM-SKU-000000", 1), ("WM-SKU-000001", 2)], order_date=clock() - 3600 - minutes * 60
        )
    store.add_order([("WM-SKU-000000", 1)], order_date=clock() - 8 * 86400)
    token = get_token(client)
    response = client.get("/v3/orders", query_string={"limit": 10}, headers=call_headers(token))
    page = body(response)["list"]
    assert page["meta"]["totalCount"] == 25 and page["meta"]["limit"] == 10
    orders = page["elements"]["order"]
    first = orders[0]
    line = first["orderLines"]["orderLine"][1]
    assert line["lineNumber"] == "2" and line["orderLineQuantity"] == {
        "unitOfMeasurement": "EACH",
        "amount": "2",
    }
    assert isinstance(first["orderDate"], int) and first["orderDate"] > orders[-1]["orderDate"]
    assert line["orderLineStatuses"]["orderLineStatus"][0]["status"] == "Created"
    cursor = page["meta"]["nextCursor"]
    assert cursor.startswith("?limit=10&hasMoreElements=true&soIndex=10")
    while cursor:
        page = body(client.get("/v3/orders" + cursor, headers=call_headers(token)))["list"]
        orders += page["elements"]["order"]
        cursor = page["meta"]["nextCursor"]
    assert len({o["purchaseOrderId"] for o in orders}) == 25
    older = body(
        client.get(
            "/v3/orders",
            query_string={"createdStartDate": "2026-01-01", "limit": 200},
            headers=call_headers(token),
        )
    )
    assert older["list"]["meta"]["totalCount"] == 26 and older["list"]["meta"]["nextCursor"] is None
    empty = client.get("/v3/orders", query_string={"sku": "nothing"}, headers=call_headers(token))
    assert empty.status_code == 404 and body(empty)["errors"][0]["code"] == "CONTENT_NOT_FOUND.GMP_ORDER_API"
    po = first["purchaseOrderId"]
    acked = body(client.post(f"/v3/orders/{po}/acknowledge", headers=call_headers(token)))
    assert (
        acked["order"]["orderLines"]["orderLine"][0]["orderLineStatuses"]["orderLineStatus"][0]["status"]
        == "Acknowledged"
    )


# --- notifications ---------------------------------------------------------------------------------------


def test_notifications_are_signed_and_enveloped(receiver: Receiver) -> None:
    with serve(webhook_retry_delays=()) as server:
        token = server.emulator.issue_token()
        server.store.add_item("N-1", quantity_by_node={server.store.default_ship_node: 2})
        created = requests.post(
            f"{server.url}/v3/webhooks/subscriptions",
            json={
                "events": [
                    {
                        "eventType": "PO_CREATED",
                        "eventVersion": "V1",
                        "resourceName": "ORDER",
                        "eventUrl": receiver.url,
                        "status": "ACTIVE",
                        "authDetails": {"authMethod": "HMAC", "authHeaderName": "X-Walmart-Signature"},
                        "headers": {"X-Extra": "1"},
                    },
                    {
                        "eventType": "INVENTORY_OOS",
                        "resourceName": "INVENTORY",
                        "eventUrl": receiver.url,
                        "authDetails": {"authMethod": "BASIC_AUTH", "userName": "u", "password": "p"},
                    },
                ]
            },
            headers=call_headers(token),
            timeout=5,
        )
        assert created.status_code == 200, created.text
        events = created.json()["events"]
        assert all(e["subscriptionId"] and e["partnerId"] == "10000682332" for e in events)
        assert "password" not in events[1]["authDetails"]
        listed = requests.get(
            f"{server.url}/v3/webhooks/subscriptions", headers=call_headers(token), timeout=5
        ).json()
        assert len(listed["events"]) == 2

        order = server.store.add_order([("N-1", 2)])
        received = receiver.wait_for(2)
        by_type = {orjson.loads(raw)["source"]["eventType"]: (headers, raw) for headers, raw in received}
        headers, raw = by_type["PO_CREATED"]
        expected = base64.b64encode(hmac.new(CLIENT_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
        assert headers["X-Walmart-Signature"] == expected == sign(CLIENT_SECRET, raw)
        assert headers["X-Extra"] == "1"
        envelope = orjson.loads(raw)
        assert set(envelope["source"]) == {"eventType", "eventTime", "eventId"}
        assert envelope["source"]["eventTime"].endswith("Z")
        assert envelope["payload"]["purchaseOrderId"] == order.purchase_order_id
        assert envelope["payload"]["orderLines"][0]["quantity"] == {
            "unitOfMeasure": "EACH",
            "measurementValue": "2",
        }
        oos_headers, oos_raw = by_type["INVENTORY_OOS"]
        assert oos_headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
        assert orjson.loads(oos_raw)["payload"]["shipNodes"][0]["availToSellQty"] == 0

        deleted = requests.delete(
            f"{server.url}/v3/webhooks/subscriptions/{events[0]['subscriptionId']}",
            headers=call_headers(token),
            timeout=5,
        )
        assert deleted.status_code == 200
        patched = requests.patch(
            f"{server.url}/v3/webhooks/subscriptions/{events[1]['subscriptionId']}",
            json={"status": "INACTIVE"},
            headers=call_headers(token),
            timeout=5,
        )
        assert patched.json()["status"] == "INACTIVE"
        server.store.add_order([("N-1", 1)])
        server.emulator.webhooks.flush()
        assert len(receiver.received) == 2
        validated = requests.post(
            f"{server.url}/v3/webhooks/test",
            json={"eventType": "OFFER_UNPUBLISHED", "eventUrl": receiver.url},
            headers=call_headers(token),
            timeout=5,
        )
        assert validated.json() == {"message": "Eventurl successfully validated"}
        assert orjson.loads(receiver.received[-1][1])["source"]["eventType"] == "OFFER_UNPUBLISHED"
        outside = requests.post(
            f"{server.url}/v3/webhooks/subscriptions",
            json={"events": [{"eventType": "PO_CREATED", "eventUrl": "https://example.com/hook"}]},
            headers=call_headers(token),
            timeout=5,
        )
        assert outside.status_code == 400


def test_notification_faults_duplicate_and_drop(receiver: Receiver, emulator: WalmartEmulator) -> None:
    client = emulator.app.test_client()
    token = emulator.issue_token()
    emulator.store.seed_catalog(1, quantity=100)
    client.post(
        "/v3/webhooks/subscriptions",
        json={"events": [{"eventType": "PO_CREATED", "eventUrl": receiver.url}]},
        headers=call_headers(token),
    )
    emulator.webhooks.plan(WebhookFault(duplicate=True), WebhookFault(drop=True))
    emulator.store.add_order([("WM-SKU-000000", 1)])
    emulator.store.add_order([("WM-SKU-000000", 1)])
    assert emulator.webhooks.flush()
    ids = [orjson.loads(raw)["source"]["eventId"] for _, raw in receiver.received]
    assert len(ids) == 2 and ids[0] == ids[1]
    attempts = emulator.webhooks.attempts()
    assert [a.error for a in attempts].count("dropped") == 1


# --- throttling and faults -------------------------------------------------------------------------------


def test_token_bucket_headers_and_429(clock: FakeClock) -> None:
    emulator = WalmartEmulator(clock=clock, rate_limits={"get_items": RateLimit(2, 60)})
    try:
        client = emulator.app.test_client()
        token = emulator.issue_token()
        first = client.get("/v3/items", headers=call_headers(token))
        assert first.headers["X-Current-Token-Count"] == "1"
        assert int(first.headers["X-Next-Replenishment-Time"]) == int((clock() + 30) * 1000)
        client.get("/v3/items", headers=call_headers(token))
        refused = client.get("/v3/items", headers=call_headers(token))
        assert refused.status_code == 429
        assert body(refused)["error"][0]["code"] == "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API"
        assert refused.headers["Retry-After"] == "30"
        assert refused.headers["X-Current-Token-Count"] == "0"
        assert client.get("/v3/inventory?sku=x", headers=call_headers(token)).status_code == 404
        clock.advance(30)
        assert client.get("/v3/items", headers=call_headers(token)).status_code == 200
    finally:
        emulator.close()


def test_planned_and_random_faults_hit_only_chosen_endpoints(
    client: FlaskClient, emulator: WalmartEmulator
) -> None:
    token = get_token(client)
    emulator.store.seed_catalog(1)
    emulator.faults.fail_next(2, 503, endpoints=["get_items"])
    emulator.faults.plan(
        ApiFault.server_error(500), ApiFault.too_many_requests(7), endpoints=["get_inventory"]
    )
    assert client.get("/v3/inventory?sku=WM-SKU-000000", headers=call_headers(token)).status_code == 500
    limited = client.get("/v3/inventory?sku=WM-SKU-000000", headers=call_headers(token))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert [client.get("/v3/items", headers=call_headers(token)).status_code for _ in range(3)] == [
        503,
        503,
        200,
    ]
    emulator.faults.set_random(0.5, [ApiFault.server_error(502)], endpoints=["get_orders"], seed=3)
    statuses = [client.get("/v3/orders", headers=call_headers(token)).status_code for _ in range(40)]
    assert 5 < statuses.count(502) < 35 and set(statuses) == {502, 404}
    assert emulator.store.requests["get_orders"] == 40
    emulator.faults.clear()
    assert client.get("/v3/orders", headers=call_headers(token)).status_code == 404


def test_timeouts_and_dropped_connections_over_http() -> None:
    with serve(mcs_delay=0) as server:
        store = server.store
        store.add_item("T-1", quantity_by_node={store.default_ship_node: 9})
        channel = store.add_channel().order_channel_id
        token = server.emulator.issue_token()
        server.emulator.faults.plan(ApiFault.slow(0.6), endpoints=["put_inventory"])
        with pytest.raises(requests.ReadTimeout):
            requests.put(
                f"{server.url}/v3/inventory?sku=T-1",
                json={"sku": "T-1", "quantity": {"unit": "EACH", "amount": 4}},
                headers=call_headers(token),
                timeout=0.2,
            )
        deadline = time.monotonic() + 5
        while store.get_quantity("T-1") != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get_quantity("T-1") == 4
        server.emulator.faults.plan(ApiFault.dropped(), endpoints=["get_items"])
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/v3/items", headers=call_headers(token), timeout=5)
        server.emulator.faults.plan(ApiFault.dropped(after=True), endpoints=["mcs_create"])
        with pytest.raises(requests.ConnectionError):
            requests.post(
                f"{server.url}{MCS}",
                json=mcs_order(channel, "LOST1", [("1", "T-1", 1)]),
                headers=call_headers(token),
                timeout=5,
            )
        assert store.fulfilment_orders_created == 1
        retried = requests.post(
            f"{server.url}{MCS}",
            json=mcs_order(channel, "LOST1", [("1", "T-1", 1)]),
            headers=call_headers(token),
            timeout=5,
        )
        assert retried.status_code == 400 and store.fulfilment_orders_created == 1
        status = requests.get(
            f"{server.url}{MCS}/status?orderNumber=LOST1", headers=call_headers(token), timeout=5
        )
        assert status.json()["payload"][0]["sellerOrderId"] == "LOST1"
        assert status.headers["WM_QOS.CORRELATION_ID"]


def test_walmart_orders_ship_cancel_and_released(client: FlaskClient, emulator: WalmartEmulator) -> None:
    store = emulator.store
    store.add_item("SC-1", quantity_by_node={store.default_ship_node: 10})
    order = store.add_order([("SC-1", 3)])
    other = store.add_order([("SC-1", 1)])
    token = get_token(client)
    po = order.purchase_order_id
    shipment = {
        "orderShipment": {
            "orderLines": {
                "orderLine": [
                    {
                        "lineNumber": "1",
                        "sellerOrderId": "VID42",
                        "orderLineStatuses": {
                            "orderLineStatus": [
                                {
                                    "status": "Shipped",
                                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "2"},
                                    "trackingInfo": {
                                        "shipDateTime": 1_790_000_000_000,
                                        "carrierName": {"carrier": "UPS"},
                                        "methodCode": "Standard",
                                        "trackingNumber": "1Z1",
                                    },
                                }
                            ]
                        },
                    }
                ]
            }
        }
    }
    shipped = body(client.post(f"/v3/orders/{po}/shipping", json=shipment, headers=call_headers(token)))
    entries = shipped["order"]["orderLines"]["orderLine"][0]["orderLineStatuses"]["orderLineStatus"]
    assert [(e["status"], e["statusQuantity"]["amount"]) for e in entries] == [
        ("Created", "1"),
        ("Shipped", "2"),
    ]
    assert entries[1]["trackingInfo"]["carrierName"]["carrier"] == "UPS"
    assert store.nodes("SC-1")[store.default_ship_node].input_qty == 8
    too_many = client.post(f"/v3/orders/{po}/shipping", json=shipment, headers=call_headers(token))
    assert too_many.status_code == 400 and body(too_many)["errors"][0]["code"] == "INVALID_REQUEST_CONTENT"
    other_carrier = orjson.loads(orjson.dumps(shipment))
    tracking = other_carrier["orderShipment"]["orderLines"]["orderLine"][0]["orderLineStatuses"][
        "orderLineStatus"
    ][0]
    tracking["statusQuantity"]["amount"] = "1"
    tracking["trackingInfo"]["carrierName"] = {"otherCarrier": "Local courier"}
    no_url = client.post(f"/v3/orders/{po}/shipping", json=other_carrier, headers=call_headers(token))
    assert body(no_url)["errors"][0]["field"].endswith("trackingURL")
    cancellation = {
        "orderCancellation": {
            "orderLines": {
                "orderLine": [
                    {
                        "lineNumber": "1",
                        "orderLineStatuses": {
                            "orderLineStatus": [
                                {
                                    "status": "Cancelled",
                                    "cancellationReason": "SELLER_CANCEL_OUT_OF_STOCK",
                                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "1"},
                                }
                            ]
                        },
                    }
                ]
            }
        }
    }
    before = store.total_available("SC-1")
    cancelled = body(client.post(f"/v3/orders/{po}/cancel", json=cancellation, headers=call_headers(token)))
    statuses = cancelled["order"]["orderLines"]["orderLine"][0]["orderLineStatuses"]["orderLineStatus"]
    assert [e["status"] for e in statuses] == ["Shipped", "Cancelled"]
    assert statuses[1]["cancellationReason"] == "SELLER_CANCEL_OUT_OF_STOCK"
    assert store.total_available("SC-1") == before + 1
    released = body(client.get("/v3/orders/released", headers=call_headers(token)))["list"]
    assert [o["purchaseOrderId"] for o in released["elements"]["order"]] == [other.purchase_order_id]
    shipped_only = body(
        client.get("/v3/orders", query_string={"status": "Shipped"}, headers=call_headers(token))
    )
    assert [o["purchaseOrderId"] for o in shipped_only["list"]["elements"]["order"]] == [po]


def test_oauth_notifications_fetch_a_token_from_the_auth_url(
    receiver: Receiver, emulator: WalmartEmulator
) -> None:
    client = emulator.app.test_client()
    token = emulator.issue_token()
    emulator.store.add_item("O-1", quantity_by_node={emulator.store.default_ship_node: 1})
    client.post(
        "/v3/webhooks/subscriptions",
        json={
            "events": [
                {
                    "eventType": "OFFER_UNPUBLISHED",
                    "eventUrl": receiver.url,
                    "authDetails": {
                        "authMethod": "OAUTH",
                        "authUrl": receiver.url + "/token",
                        "clientId": "me",
                        "clientSecret": "shh",
                        "authHeaderName": "Authorization",
                    },
                }
            ]
        },
        headers=call_headers(token),
    )
    emulator.store.set_published("O-1", False)
    received = receiver.wait_for(2)
    token_request, delivery = received[0], received[1]
    assert token_request[0]["Authorization"] == "Basic " + base64.b64encode(b"me:shh").decode()
    assert token_request[1] == b"grant_type=client_credentials"
    assert delivery[0]["Authorization"] == "Bearer receiver-token"
    assert orjson.loads(delivery[1])["payload"]["publishStatus"] == "UNPUBLISHED"


def test_mcs_orders_announce_status_and_shipment_updates(receiver: Receiver) -> None:
    with serve(mcs_delay=0, webhook_retry_delays=()) as server:
        store = server.store
        store.add_item("W-1", quantity_by_node={store.default_ship_node: 4})
        channel = store.add_channel().order_channel_id
        token = server.emulator.issue_token()
        for event_type in ("ORDER_STATUS_UPDATE", "ORDER_SHIPMENT_UPDATE"):
            requests.post(
                f"{server.url}/v3/webhooks/subscriptions",
                json={
                    "events": [{"eventType": event_type, "resourceName": "ORDER", "eventUrl": receiver.url}]
                },
                headers=call_headers(token),
                timeout=5,
            ).raise_for_status()
        created = requests.post(
            f"{server.url}{MCS}",
            json=mcs_order(channel, "SL1", [("1", "W-1", 3)]),
            headers=call_headers(token),
            timeout=5,
        )
        assert created.status_code == 200
        accepted = orjson.loads(receiver.wait_for(1)[0][1])
        assert accepted["source"]["eventType"] == "ORDER_STATUS_UPDATE"
        assert accepted["payload"]["originSystemOrderId"] == "SL1"
        assert accepted["payload"]["lineItemStatus"][0]["itemStatus"][0]["status"] == "Acknowledged"
        assert store.total_available("W-1") == 1
        store.ship_fulfilment("SL1", tracking_number="TRK1")
        kinds = {
            orjson.loads(raw)["source"]["eventType"]: orjson.loads(raw) for _, raw in receiver.wait_for(3)
        }
        shipment = kinds["ORDER_SHIPMENT_UPDATE"]["payload"]
        assert shipment["shipmentDetails"][0]["trackingNo"] == "TRK1"
        assert shipment["lineItemStatus"][0]["itemStatus"][0]["status"] == "Shipped"
        assert store.nodes("W-1")[store.default_ship_node].input_qty == 1
        status = requests.get(
            f"{server.url}{MCS}/status?orderNumber=SL1", headers=call_headers(token), timeout=5
        )
        assert status.json()["payload"][0]["shipments"][0]["trackingNo"] == "TRK1"
        refused = requests.post(
            f"{server.url}{MCS}/cancel",
            json={"header": HEADER, "payload": {"sellerOrderId": "SL1"}},
            headers=call_headers(token),
            timeout=5,
        )
        assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "INVALID_MCS_REQUEST"
