"""The Walmart adapter against a scripted Marketplace API: config, capabilities, catalog, stock, orders, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from adapters.walmart.adapter import WalmartAdapter
from connector.domain.catalog import InventoryLevel
from connector.domain.errors import AuthError, NotFoundError, PermanentError, RetryableError, ValidationError
from connector.domain.money import Money
from connector.domain.orders import Address, ExternalOrderRef, Order, OrderLine
from connector.domain.ports import Capability, HttpOptions, StoreAdapter
from connector.domain.store_events import StoreEventKind

BASE = "http://walmart.test"
WALL_START = 1_800_000_000.0
CREDENTIALS = {"client_id": "cid", "client_secret": "csecret"}


class Clock:
    def __init__(self) -> None:
        self.mono = 50.0
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


def item(sku: str, amount: Any = 10, **extra: Any) -> dict[str, Any]:
    return {
        "mart": "WALMART_US",
        "sku": sku,
        "upc": "",
        "gtin": f"0000{sku}",
        "productName": f"Item {sku}",
        "shelf": '["Home Page"]',
        "price": {"currency": "USD", "amount": amount},
        "publishedStatus": "PUBLISHED",
        "lifecycleStatus": "ACTIVE",
        **extra,
    }


class FakeWalmart:
    """A scripted seller: items in pages, stock per SKU, Multichannel orders and subscriptions."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.pages: list[list[dict[str, Any]]] = [[item("A"), item("B")]]
        self.stock: dict[str, int] = {"A": 5, "B": 0}
        self.mcs_orders: dict[str, dict[str, Any]] = {}
        self.mcs_status_sequence: list[str] = ["DELIVERED"]
        self.create_answer: tuple[int, dict[str, Any]] | None = None
        self.subscriptions: list[dict[str, Any]] = []
        self.feed_status = "PROCESSED"
        self.feed_failed = 0
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.token_status = 200
        rsps.add_callback(responses.POST, f"{BASE}/v3/token", callback=self._token)
        rsps.add_callback(responses.GET, re.compile(rf"{BASE}/v3/.*"), callback=self._answer)
        rsps.add_callback(responses.PUT, re.compile(rf"{BASE}/v3/.*"), callback=self._answer)
        rsps.add_callback(responses.POST, re.compile(rf"{BASE}/v3/(?!token).*"), callback=self._answer)
        rsps.add_callback(responses.PATCH, re.compile(rf"{BASE}/v3/.*"), callback=self._answer)

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.token_status != 200:
            body = {"error": [{"code": "UNAUTHORIZED.GMP_GATEWAY_API", "description": "Unauthorized"}]}
            return self.token_status, {}, json.dumps(body)
        return 200, {}, json.dumps({"access_token": "tok", "token_type": "Bearer", "expires_in": 900})

    def called(self, method: str, path: str) -> list[tuple[str, str, dict[str, str], Any]]:
        return [call for call in self.calls if call[0] == method and call[1] == path]

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(request.url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, parts.path, query, body))
        status, answer = self._route(request.method, parts.path, query, body)
        return status, {}, json.dumps(answer)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        not_found = {"errors": [{"code": "CONTENT_NOT_FOUND.GMP_INVENTORY_API", "description": "not found"}]}
        if path == "/v3/items":
            index = 0 if query["nextCursor"] == "*" else int(query["nextCursor"].removeprefix("page"))
            more = index + 1 < len(self.pages)
            return 200, {
                "ItemResponse": self.pages[index],
                "totalItems": sum(map(len, self.pages)),
                "nextCursor": f"page{index + 1}" if more else "",
            }
        if path == "/v3/inventory":
            sku = query["sku"]
            if method == "PUT":
                self.stock[sku] = body["quantity"]["amount"]
                return 200, body
            if sku not in self.stock:
                return 404, not_found
            return 200, {"sku": sku, "quantity": {"unit": "EACH", "amount": self.stock[sku]}}
        if path.startswith("/v3/inventories/"):
            sku = path.rsplit("/", 1)[1]
            if method == "PUT":
                node = body["inventories"]["nodes"][0]
                self.stock[sku] = node["inputQty"]["amount"]
                return 200, {"sku": sku, "nodes": [{"shipNode": node["shipNode"], "status": "Success"}]}
            if sku not in self.stock:
                return 404, not_found
            nodes = [
                {"shipNode": "N1", "inputQty": {"amount": 99}, "availToSellQty": {"amount": self.stock[sku]}},
                {"shipNode": "N2", "availToSellQty": {"unit": "EACH", "amount": "1"}},
            ]
            return 200, {"sku": sku, "nodes": nodes}
        if path == "/v3/feeds" and method == "POST":
            return 200, {"feedId": f"FEED{len(self.called('POST', '/v3/feeds'))}@AQ"}
        if path.startswith("/v3/feeds/"):
            return 200, {
                "feedId": path.rsplit("/", 1)[1],
                "feedStatus": self.feed_status,
                "itemsReceived": 60,
                "itemsSucceeded": 60 - self.feed_failed,
                "itemsFailed": self.feed_failed,
            }
        if path == "/v3/fulfillment/orders-fulfillments/channel-details":
            return 200, {
                "payload": {
                    "mcsDetails": [{"orderChannelId": "CH-9", "orderChannelName": "video", "active": True}]
                }
            }
        if path == "/v3/fulfillment/orders-fulfillments" and method == "POST":
            if self.create_answer is not None:
                return self.create_answer
            seller_order = body["payload"]["sellerOrderId"]
            self.mcs_orders[seller_order] = body["payload"]
            return 200, {"status": "ACCEPTED", "header": {}, "payload": {"requestId": "req-1"}}
        if path == "/v3/fulfillment/orders-fulfillments/status":
            number = query["orderNumber"]
            if number not in self.mcs_orders:
                return 404, {
                    "status": "FAIL",
                    "errors": [{"code": "OS_NOT_FOUND_ERROR", "description": "none"}],
                }
            status = (
                self.mcs_status_sequence.pop(0)
                if len(self.mcs_status_sequence) > 1
                else self.mcs_status_sequence[0]
            )
            lines = [
                {"sellerLineId": line["sellerLineId"], "qty": line["qty"]}
                for line in self.mcs_orders[number].get("orderItems", [])
            ]
            return 200, {
                "payload": [
                    {
                        "sellerOrderId": number,
                        "status": status,
                        "shipments": [{"purchaseOrderId": "PO-77"}],
                        "orderLines": lines,
                    }
                ]
            }
        if path == "/v3/fulfillment/orders-fulfillments/cancel":
            return 200, {"status": "ACCEPTED"}
        if path == "/v3/webhooks/subscriptions" and method == "GET":
            return 200, {"events": self.subscriptions}
        if path == "/v3/webhooks/subscriptions" and method == "POST":
            for number, event in enumerate(body["events"]):
                self.subscriptions.append({**event, "subscriptionId": f"S{len(self.subscriptions) + number}"})
            return 200, {"events": body["events"]}
        if path.startswith("/v3/webhooks/subscriptions/") and method == "PATCH":
            sid = path.rsplit("/", 1)[1]
            for entry in self.subscriptions:
                if entry["subscriptionId"] == sid:
                    entry.update(body)
            return 200, {}
        return 404, {"errors": [{"code": "URI_NOT_FOUND"}]}


@pytest.fixture
def api() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeWalmart(rsps)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def adapter(clock: Clock, credentials: dict[str, str] | None = None, **config: Any) -> WalmartAdapter:
    return WalmartAdapter(
        {"seller_id": "S1", "base_url": BASE, "inventory_source": "sku", **config},
        credentials or CREDENTIALS,
        HttpOptions(timeout=5),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        wall=clock.now,
    )


# -- configuration and capabilities ------------------------------------------------------------------------------


def test_config_is_validated_and_normalized():
    config = WalmartAdapter.validate_config(
        {"client_id": "cid", "environment": "sandbox", "shipping_method": "expedited"}
    )
    assert config["base_url"] == "https://sandbox.walmartapis.com"
    assert config["shipping_method"] == "EXPEDITED" and config["mcs_enrolled"] is False
    assert config["inventory_source"] == "ship_nodes"  # availToSellQty: net of Walmart's own open orders
    assert WalmartAdapter.store_ref(config) == "cid"
    assert WalmartAdapter.store_ref({"seller_id": "S1", "client_id": "cid"}) == "S1"
    assert WalmartAdapter.validate_config(config) == config
    for bad in (
        {},
        {"seller_id": "S1", "nope": 1},
        {"seller_id": "S1", "environment": "staging"},
        {"seller_id": "S1", "base_url": "ftp://x"},
        {"seller_id": "S1", "mcs_enrolled": "yes"},
        {"seller_id": "S1", "seller_order_prefix": "a-b"},
        {"seller_id": "S1", "inventory_source": "magic"},
        {"seller_id": "S1", "webhook_auth": "OAUTH"},
    ):
        with pytest.raises(ValidationError):
            WalmartAdapter.validate_config(bad)


def test_capabilities_follow_the_sellers_enrollment(clock):
    assert Capability.ORDER_PUSH in WalmartAdapter.capabilities  # the store kind can push orders
    plain = adapter(clock)
    assert isinstance(plain, StoreAdapter)
    assert Capability.ORDER_PUSH not in plain.capabilities
    assert Capability.INVENTORY_WRITE in plain.capabilities
    assert Capability.ORDER_PUSH in adapter(clock, mcs_enrolled=True).capabilities


def test_missing_credentials_are_an_auth_error(clock):
    with pytest.raises(AuthError):
        adapter(clock, credentials={"client_id": "cid"})


def test_connection_check_requests_a_token_and_finds_the_channel(api, clock):
    shop = adapter(clock, mcs_enrolled=True)
    shop.check_connection()
    assert shop.channel_id == "CH-9" and shop.config["order_channel_id"] == "CH-9"
    api.token_status = 401
    with pytest.raises(AuthError) as caught:
        adapter(clock).check_connection()
    assert caught.value.code == "bad_credentials"


def test_channel_discovery_needs_one_active_channel_or_a_name(api, clock):
    api_route = api._route

    def two_channels(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path.endswith("/channel-details"):
            details = [
                {"orderChannelId": "C1", "orderChannelName": "video", "active": True},
                {"orderChannelId": "C2", "orderChannelName": "shop", "active": True},
                {"orderChannelId": "C3", "orderChannelName": "live", "active": False},
            ]
            return 200, {"payload": {"mcsDetails": details}}
        return api_route(method, path, query, body)

    api._route = two_channels
    with pytest.raises(PermanentError) as caught:
        adapter(clock, mcs_enrolled=True).discover_channel()
    assert caught.value.code == "no_order_channel" and "C1" in caught.value.message
    assert adapter(clock, mcs_enrolled=True, order_channel_name="shop").discover_channel() == "C2"
    with pytest.raises(PermanentError):
        adapter(clock, mcs_enrolled=True, order_channel_name="live").discover_channel()  # inactive


# -- catalog -------------------------------------------------------------------------------------------------


def test_catalog_follows_the_cursor_to_the_end_through_short_pages(api, clock):
    api.pages = [
        [item("A"), item("B"), item("C")],
        [item("D")],  # a short page is not the last one
        [],
        [item("E", amount="7.5"), item("F")],
    ]
    api.stock = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5}
    shop = adapter(clock)
    stream = shop.iter_catalog(None)
    assert not isinstance(stream, list)
    products = list(stream)
    assert [p.external_id for p in products] == ["A", "B", "C", "D", "E", "F"]
    cursors = [query["nextCursor"] for _, _, query, _ in api.called("GET", "/v3/items")]
    assert cursors == ["*", "page1", "page2", "page3"]
    by_id = {p.external_id: p.variants[0] for p in products}
    assert by_id["E"].price == Money(750, "USD")
    assert by_id["A"].quantity == 1 and by_id["F"].quantity is None  # F has no stock record
    assert shop.iter_catalog_errors() == [] and shop.skipped_count == 0


def test_unusable_and_duplicate_items_are_skipped_and_reported(api, clock):
    api.pages = [[item("A"), {"sku": "BAD", "price": {"amount": "x"}}, item("A"), {"price": {}}]]
    shop = adapter(clock, catalog_stock=False)
    products = list(shop.iter_catalog())
    assert [p.external_id for p in products] == ["A"]
    errors = shop.iter_catalog_errors()
    assert [position for position, _ in errors] == [2, 3, 4]
    assert "duplicate" in errors[1][1]
    assert shop.catalog_skipped_refs() == {"BAD"}
    assert not api.called("GET", "/v3/inventory")


def test_variant_groups_are_one_product(api, clock):
    grouped = {"variantGroupId": "G1"}
    api.pages = [[item("G-S", **grouped), item("G-M", **grouped)], [item("Z"), item("G-L", **grouped)]]
    products = list(adapter(clock, catalog_stock=False).iter_catalog())
    assert [(p.external_id, [v.external_id for v in p.variants]) for p in products] == [
        ("G1", ["G-S", "G-M"]),
        ("Z", ["Z"]),
        ("G1", ["G-L"]),  # a later part of the group: the catalog sync merges it
    ]
    assert products[0].title == products[2].title == "Item G-S"
    assert products[0].content_hash() == products[2].content_hash()


# -- inventory -----------------------------------------------------------------------------------------------


def test_inventory_per_sku_is_percent_encoded_and_unknown_skus_left_out(api, clock):
    api.stock = {"A B/1": 4}
    levels = adapter(clock).get_inventory(["A B/1", "missing", "A B/1"])
    assert [(lv.variant_external_id, lv.location_ref, lv.available) for lv in levels] == [
        ("A B/1", "default", 4)
    ]
    assert levels[0].source_updated_at == datetime.fromtimestamp(WALL_START, UTC)
    assert [query["sku"] for _, _, query, _ in api.called("GET", "/v3/inventory")] == ["A B/1", "missing"]


def test_inventory_per_ship_node_reads_avail_to_sell(api, clock):
    api.stock = {"A": 4}
    summed = adapter(clock, inventory_source="ship_nodes").get_inventory(["A"])
    assert [(lv.location_ref, lv.available) for lv in summed] == [("default", 5)]
    at_node = adapter(clock, inventory_source="ship_nodes", location="N1").get_inventory(["A"])
    assert [(lv.location_ref, lv.available) for lv in at_node] == [("N1", 4)]


def test_small_stock_writes_are_one_put_per_sku(api, clock):
    shop = adapter(clock)
    shop.set_inventory([InventoryLevel("A", "default", 9), InventoryLevel("B", "default", -2)])
    puts = api.called("PUT", "/v3/inventory")
    assert [(q["sku"], b["quantity"]["amount"]) for _, _, q, b in puts] == [("A", 9), ("B", 0)]
    assert not api.called("POST", "/v3/feeds")
    with pytest.raises(ValidationError):
        shop.set_inventory([InventoryLevel("A", "default", None)])


def test_per_node_writes_check_each_nodes_status(api, clock):
    shop = adapter(clock, inventory_source="ship_nodes", location="N1")
    shop.set_inventory([InventoryLevel("A", "N1", 3)])
    [(_, _, _, body)] = api.called("PUT", "/v3/inventories/A")
    assert body == {"inventories": {"nodes": [{"shipNode": "N1", "inputQty": {"unit": "EACH", "amount": 3}}]}}
    with pytest.raises(PermanentError):
        adapter(clock, inventory_source="ship_nodes").set_inventory([InventoryLevel("A", "default", 3)])


def test_large_stock_writes_go_as_one_feed_within_the_hourly_allowance(api, clock):
    shop = adapter(clock, bulk_inventory_threshold=5, feeds_per_hour=2, feed_poll_seconds=5)
    levels = [InventoryLevel(f"S{n}", "default", n) for n in range(60)]
    shop.set_inventory(levels)
    [(_, _, query, body)] = api.called("POST", "/v3/feeds")
    assert query == {"feedType": "inventory"}
    assert body["InventoryHeader"] == {"version": "1.4"} and len(body["Inventory"]) == 60
    [(_, _, status_query, _)] = api.called("GET", "/v3/feeds/FEED1%40AQ")
    assert status_query["includeDetails"] == "true"
    assert not api.called("PUT", "/v3/inventory")

    api.feed_failed = 3
    with pytest.raises(PermanentError) as caught:
        shop.set_inventory(levels)
    assert caught.value.code == "feed_items_failed"
    with pytest.raises(RetryableError) as limited:
        shop.set_inventory(levels)
    assert limited.value.code == "feed_allowance" and limited.value.retry_after > 3000
    assert len(api.called("POST", "/v3/feeds")) == 2


def test_per_node_bulk_writes_use_the_multi_node_feed(api, clock):
    shop = adapter(clock, inventory_source="ship_nodes", location="N1", bulk_inventory_threshold=1)
    shop.set_inventory([InventoryLevel("A", "N1", 2), InventoryLevel("B", "default", 3)])
    [(_, _, query, body)] = api.called("POST", "/v3/feeds")
    assert query == {"feedType": "MP_INVENTORY"}
    assert body["inventoryHeader"] == {"version": "1.5"}
    assert [(e["sku"], e["shipNodes"][0]["shipNode"]) for e in body["inventory"]] == [
        ("A", "N1"),
        ("B", "N1"),
    ]
    with pytest.raises(ValidationError):
        shop.set_inventory([InventoryLevel("A", "N2", 2)])  # not the configured node


def test_a_feed_still_processing_is_left_to_walmart(api, clock):
    api.feed_status = "INPROGRESS"
    shop = adapter(clock, bulk_inventory_threshold=1, feed_poll_seconds=3)
    shop.set_inventory([InventoryLevel("A", "default", 1), InventoryLevel("B", "default", 1)])
    assert len(api.called("GET", "/v3/feeds/FEED1%40AQ")) >= 2
    assert sum(clock.sleeps) <= 3.0 + 1e-9


# -- Walmart-originated orders -------------------------------------------------------------------------------


def order_json(po: str, sku: str, amount: str = "1") -> dict[str, Any]:
    return {
        "purchaseOrderId": po,
        "customerOrderId": f"C{po}",
        "orderDate": 1_799_000_000_000,
        "orderLines": {
            "orderLine": [
                {
                    "lineNumber": "1",
                    "item": {"sku": sku},
                    "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": amount},
                    "orderLineStatuses": {
                        "orderLineStatus": [{"status": "Created", "statusQuantity": {"amount": amount}}]
                    },
                }
            ]
        },
    }


def test_orders_are_read_in_windows_following_each_cursor(clock):
    cursor = "?limit=200&hasMoreElements=true&soIndex=2&poIndex=1&createdStartDate=x"
    seen: list[str] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(request.url)
        query = urlsplit(request.url).query
        if "soIndex=2" in query:
            page = {
                "list": {"meta": {"nextCursor": None}, "elements": {"order": [order_json("P2", "B", "2")]}}
            }
            return 200, {}, json.dumps(page)
        if len(seen) == 1:
            page = {"list": {"meta": {"nextCursor": cursor}, "elements": {"order": [order_json("P1", "A")]}}}
            return 200, {}, json.dumps(page)
        return 404, {}, json.dumps({"errors": [{"code": "CONTENT_NOT_FOUND.GMP_ORDER_API"}]})

    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/v3/token", json={"access_token": "t", "expires_in": 900})
        rsps.add_callback(responses.GET, f"{BASE}/v3/orders", callback=answer)
        since = datetime.fromtimestamp(WALL_START, UTC) - timedelta(days=10)
        orders = list(adapter(clock).iter_orders(since))
    assert [o.purchase_order_id for o in orders] == ["P1", "P2"]
    assert orders[1].sku_quantities() == {"B": 2}
    assert seen[1] == f"{BASE}/v3/orders{cursor}"  # the cursor is the whole query string
    first_query = dict(parse_qsl(urlsplit(seen[0]).query))
    assert first_query["createdStartDate"] == "2027-01-05T08:00:00Z"  # ten days before now
    assert first_query["createdEndDate"] == "2027-01-12T08:00:00Z"  # seven-day windows
    last_query = dict(parse_qsl(urlsplit(seen[2]).query))
    assert last_query["createdStartDate"] == "2027-01-12T08:00:00Z"
    assert "createdEndDate" not in last_query  # the last window is open: nothing placed meanwhile is lost
    assert len(seen) == 3  # two pages of the first window, then the second window answers 404


def test_orders_until_a_given_time_close_the_last_window(clock):
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/v3/token", json={"access_token": "t", "expires_in": 900})
        rsps.get(
            f"{BASE}/v3/orders", status=404, json={"errors": [{"code": "CONTENT_NOT_FOUND.GMP_ORDER_API"}]}
        )
        now = datetime.fromtimestamp(WALL_START, UTC)
        assert list(adapter(clock).iter_orders(now - timedelta(days=3), now - timedelta(days=1))) == []
        [call] = [c for c in rsps.calls if "/v3/orders" in c.request.url]
    query = dict(parse_qsl(urlsplit(call.request.url).query))
    assert (query["createdStartDate"], query["createdEndDate"]) == (
        "2027-01-12T08:00:00Z",
        "2027-01-14T08:00:00Z",
    )


# -- Multichannel orders --------------------------------------------------------------------------------------


def platform_order() -> Order:
    return Order(
        id="ord_1",
        currency="USD",
        lines=(OrderLine("A", 2, Money(1999, "USD")),),
        buyer_email="b@example.com",
        shipping_address=Address("Ada Lovelace", "1 Main St", "New York", "US", "10017", province_code="NY"),
    )


def test_create_order_submits_then_polls_until_accepted(api, clock):
    api.mcs_status_sequence = ["RECEIVED", "PROCESSING"]
    shop = adapter(clock, mcs_enrolled=True, mcs_poll_seconds=10)
    ref = shop.create_order(platform_order(), "order-push-ord_1")
    seller_order = shop.seller_order_id("order-push-ord_1")
    assert ref == ExternalOrderRef(external_id=seller_order, name="PO-77")
    [(_, _, _, body)] = api.called("POST", "/v3/fulfillment/orders-fulfillments")
    assert body["payload"]["orderChannelId"] == "CH-9"  # discovered
    assert body["payload"]["sellerOrderId"] == seller_order and len(seller_order) == 18
    assert body["payload"]["orderItems"][0]["qty"]["measurementValue"] == 2
    assert clock.sleeps  # polled after a pending answer
    assert shop.find_order("order-push-ord_1") == ref


def test_create_order_looks_before_creating(api, clock):
    shop = adapter(clock, mcs_enrolled=True, order_channel_id="CH-1")
    seller_order = shop.seller_order_id("k1")
    api.mcs_orders[seller_order] = {"orderItems": []}
    assert shop.create_order(platform_order(), "k1").external_id == seller_order
    assert not api.called("POST", "/v3/fulfillment/orders-fulfillments")


def test_a_rejected_order_is_permanent(api, clock):
    api.mcs_status_sequence = ["REJECTED"]
    shop = adapter(clock, mcs_enrolled=True, order_channel_id="CH-1")
    with pytest.raises(PermanentError) as caught:
        shop.create_order(platform_order(), "k2")
    assert caught.value.code == "mcs_rejected"
    with pytest.raises(PermanentError):
        shop.find_order("k2")


def test_an_undecided_order_is_retryable_after_the_poll_time(api, clock):
    api.mcs_status_sequence = ["RECEIVED"]
    shop = adapter(clock, mcs_enrolled=True, order_channel_id="CH-1", mcs_poll_seconds=4)
    with pytest.raises(RetryableError) as caught:
        shop.create_order(platform_order(), "k3")
    assert caught.value.code == "mcs_pending" and caught.value.retry_after
    assert sum(clock.sleeps) == pytest.approx(4.0)
    assert len(api.called("POST", "/v3/fulfillment/orders-fulfillments")) == 1
    with pytest.raises(RetryableError):
        shop.find_order("k3")


def test_find_order_is_none_when_walmart_has_no_such_order(api, clock):
    assert adapter(clock, mcs_enrolled=True).find_order("never-sent") is None


def test_a_refused_create_of_an_order_that_landed_earlier_returns_it(api, clock):
    shop = adapter(clock, mcs_enrolled=True, order_channel_id="CH-1")
    seller_order = shop.seller_order_id("k4")
    calls = {"n": 0}
    original = api._route

    def route(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path.endswith("/status") and calls["n"] == 0:
            calls["n"] += 1
            return 404, {"errors": [{"code": "OS_NOT_FOUND_ERROR"}]}  # not visible yet at the first look
        return original(method, path, query, body)

    api._route = route
    api.mcs_orders[seller_order] = {"orderItems": []}
    api.create_answer = (
        400,
        {"status": "FAIL", "errors": [{"code": "INVALID_SELLER_ORDER_ID", "description": "duplicate"}]},
    )
    assert shop.create_order(platform_order(), "k4").external_id == seller_order


def test_an_order_walmart_cannot_take_is_a_validation_error(api, clock):
    shop = adapter(clock, mcs_enrolled=True, order_channel_id="CH-1")
    bad = Order(id="o", currency="USD", lines=(OrderLine("A", 1, Money(1, "USD")),))
    with pytest.raises(ValidationError, match="shipping address"):
        shop.create_order(bad, "k5")
    api.create_answer = (
        400,
        {"status": "FAIL", "errors": [{"code": "ERR_EXT_DATA_0021001", "description": "bad"}]},
    )
    with pytest.raises(ValidationError, match="ERR_EXT_DATA_0021001"):
        shop.create_order(platform_order(), "k6")


def test_cancel_sends_every_line(api, clock):
    shop = adapter(clock, mcs_enrolled=True, order_channel_id="CH-1")
    ref = shop.create_order(platform_order(), "k7")
    shop.cancel_order(ref)
    [(_, _, _, body)] = api.called("POST", "/v3/fulfillment/orders-fulfillments/cancel")
    assert body["payload"] == {
        "sellerOrderId": ref.external_id,
        "orderItems": [{"sellerLineId": "1", "qty": {"unitOfMeasure": "EACH", "measurementValue": 2}}],
    }
    with pytest.raises(NotFoundError):
        shop.cancel_order(ExternalOrderRef("SLNOTHERE"))


def test_sellers_not_on_multichannel_cannot_push_orders(api, clock):
    shop = adapter(clock)
    for call in (
        lambda: shop.create_order(platform_order(), "k"),
        lambda: shop.find_order("k"),
        lambda: shop.cancel_order(ExternalOrderRef("x")),
    ):
        with pytest.raises(PermanentError) as caught:
            call()
        assert caught.value.code == "unsupported"
    assert api.calls == []


# -- notifications -------------------------------------------------------------------------------------------


def test_register_webhooks_is_idempotent(api, clock):
    url = "https://connector.example/webhooks/walmart/7"
    api.subscriptions = [
        {
            "subscriptionId": "old",
            "eventType": "PO_CREATED",
            "eventUrl": "https://elsewhere",
            "status": "INACTIVE",
        },
        {"subscriptionId": "keep", "eventType": "INVENTORY_OOS", "eventUrl": url, "status": "ACTIVE"},
    ]
    shop = adapter(clock, mcs_enrolled=True)
    topics = shop.register_webhooks(url)
    assert "ORDER_STATUS_UPDATE" in topics and "PO_CREATED" in topics
    [(_, _, _, patch)] = api.called("PATCH", "/v3/webhooks/subscriptions/old")
    assert patch["eventUrl"] == url and patch["status"] == "ACTIVE"
    assert patch["authDetails"] == {"authMethod": "HMAC", "authHeaderName": "Authorization"}
    [(_, _, _, created)] = api.called("POST", "/v3/webhooks/subscriptions")
    assert sorted(e["eventType"] for e in created["events"]) == sorted(
        set(topics) - {"PO_CREATED", "INVENTORY_OOS"}
    )
    shop.register_webhooks(url)
    assert len(api.called("POST", "/v3/webhooks/subscriptions")) == 1
    assert len(api.called("PATCH", "/v3/webhooks/subscriptions/old")) == 1


def test_basic_auth_subscriptions_need_credentials(api, clock):
    with pytest.raises(ValidationError):
        adapter(clock, webhook_auth="BASIC_AUTH").register_webhooks("https://x")


def test_deliveries_verify_and_parse_through_the_adapter(clock):
    shop = adapter(clock)
    body = json.dumps(
        {
            "source": {"eventType": "INVENTORY_OOS", "eventTime": "2026-11-03T12:00:00Z", "eventId": "e-1"},
            "payload": {"sku": "A", "shipNodes": [{"shipNode": "N1", "availToSellQty": 0}]},
        }
    ).encode()
    signature = hmac.new(b"csecret", body, hashlib.sha256).hexdigest()
    assert shop.verify_webhook({"authorization": signature}, body)
    assert not shop.verify_webhook({"authorization": signature}, body + b" ")
    assert not shop.verify_webhook({}, body)
    assert WalmartAdapter.webhook_store_ref({"authorization": signature}) is None
    envelope = shop.webhook_envelope({}, body)
    assert (envelope.delivery_id, envelope.topic) == ("e-1", "INVENTORY_OOS")
    [event] = shop.parse_webhook(envelope.topic, {}, body)
    assert (event.kind, event.external_id, event.data["available"]) == (
        StoreEventKind.INVENTORY_CHANGED,
        "A",
        0,
    )

    basic = adapter(
        clock,
        credentials={**CREDENTIALS, "webhook_username": "wm", "webhook_password": "pw"},
        webhook_auth="BASIC_AUTH",
    )
    token = base64.b64encode(b"wm:pw").decode()
    assert basic.verify_webhook({"authorization": f"Basic {token}"}, body)
    assert not basic.verify_webhook({"authorization": signature}, body)
