"""The Shopify adapter against a scripted Admin API: config, catalog (pages and bulk), stock, orders, tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from adapters.shopify import order_mapper, queries, webhook
from adapters.shopify.adapter import ShopifyAdapter
from connector.domain.catalog import InventoryLevel
from connector.domain.errors import AuthError, PermanentError, RetryableError, ValidationError
from connector.domain.money import Money
from connector.domain.orders import ExternalOrderRef, Order, OrderLine
from connector.domain.ports import HttpOptions, StoreAdapter
from connector.domain.store_events import StoreEventKind

SHOP = "demo.myshopify.com"
BASE = "http://shop.test"
URL = f"{BASE}/admin/api/2026-10/graphql.json"
LOCATION = "gid://shopify/Location/7"
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class FakeShop:
    """Answers GraphQL requests by operation name; records (name, variables) of every call."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.handlers: dict[str, Handler] = {"StorelinkShop": lambda v: {"shop": {"currencyCode": "USD"}}}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tokens: list[str] = []
        rsps.add_callback(responses.POST, URL, callback=self._answer)

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        match = re.search(r"(?:query|mutation)\s+(\w+)", body["query"])
        name = match.group(1) if match else "anonymous"
        self.calls.append((name, body["variables"]))
        self.tokens.append(request.headers["X-Shopify-Access-Token"])
        data = self.handlers[name](body["variables"])
        if "__status" in data:
            return data["__status"], {}, ""
        return 200, {}, json.dumps({"data": data})

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def shop() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeShop(rsps), rsps


def make(config: dict[str, Any] | None = None, credentials: dict[str, str] | None = None) -> ShopifyAdapter:
    adapter = ShopifyAdapter(
        {"shop": SHOP, "base_url": BASE, **(config or {})},
        credentials if credentials is not None else {"access_token": "shpat_1", "client_secret": "secret"},
        HttpOptions(timeout=5),
    )
    adapter.sleep = lambda seconds: None
    return adapter


def variant(number: int, quantity: int = 5) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/ProductVariant/{number}",
        "title": f"V{number}",
        "sku": None,
        "barcode": None,
        "price": "9.50",
        "compareAtPrice": None,
        "inventoryQuantity": quantity,
        "selectedOptions": [],
        "inventoryItem": {"id": f"gid://shopify/InventoryItem/{number}", "tracked": True},
    }


def product(number: int, variants: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Product/{number}",
        "title": f"P{number}",
        "handle": f"p{number}",
        "status": "ACTIVE",
        "vendor": "",
        "description": "",
        "onlineStoreUrl": None,
        "updatedAt": "2026-11-01T00:00:00Z",
        "media": {"nodes": []},
        "variants": {"pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}, "nodes": variants},
    }


def page(nodes: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    return {
        "products": {"pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}, "nodes": nodes}
    }


def test_is_a_store_adapter():
    assert isinstance(make(), StoreAdapter)
    assert ShopifyAdapter.kind == "shopify"


def test_config_is_validated_and_normalized():
    config = ShopifyAdapter.validate_config(
        {"shop": "Demo.myshopify.com", "location": "7", "inventory_behaviour": "bypass"}
    )
    assert (
        config["shop"] == SHOP
        and config["location"] == LOCATION
        and config["inventory_behaviour"] == "BYPASS"
    )
    assert ShopifyAdapter.validate_config(config) == config
    assert ShopifyAdapter.store_ref(config) == SHOP
    for bad in (
        {},
        {"shop": "demo.example.com"},
        {"shop": SHOP, "location": "gid://shopify/Product/1"},
        {"shop": SHOP, "inventory_behaviour": "SOMETIMES"},
        {"shop": SHOP, "base_url": "ftp://x"},
        {"shop": SHOP, "bulk": "yes"},
        {"shop": SHOP, "colour": "red"},
    ):
        with pytest.raises(ValidationError):
            ShopifyAdapter.validate_config(bad)


def test_check_connection_reads_shop_and_location(shop):
    fake, _ = shop
    fake.handlers["StorelinkLocation"] = lambda v: {
        "location": {"id": v["id"], "name": "W", "isActive": True}
    }
    make({"location": LOCATION}).check_connection()
    assert fake.names() == ["StorelinkShop", "StorelinkLocation"]
    fake.handlers["StorelinkLocation"] = lambda v: {"location": None}
    with pytest.raises(PermanentError):
        make({"location": LOCATION}).check_connection()
    with pytest.raises(AuthError):
        make(credentials={"access_token": "t", "scopes": "read_products"}).check_connection()


def test_incremental_catalog_pages_with_an_overlap(shop):
    fake, _ = shop
    pages = {None: page([product(1, [variant(1)])], "p2"), "p2": page([product(2, [variant(2)], cursor="v")])}
    fake.handlers["StorelinkCatalogPage"] = lambda v: pages[v["after"]]
    fake.handlers["StorelinkProductVariants"] = lambda v: {
        "product": {"variants": {"pageInfo": {"hasNextPage": False}, "nodes": [variant(3)]}}
    }
    since = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    stream = make({"bulk": False}).iter_catalog(since)
    assert fake.calls == [], "nothing is read before the stream is consumed"
    products = list(stream)
    assert [p.external_id for p in products] == ["gid://shopify/Product/1", "gid://shopify/Product/2"]
    assert [v.external_id[-1] for v in products[1].variants] == ["2", "3"]
    assert products[0].variants[0].price == Money(950, "USD")
    first = fake.calls[1][1]
    assert first["query"] == "updated_at:>'2026-11-01T11:55:00Z'"


def test_full_catalog_through_a_bulk_operation(shop):
    fake, rsps = shop
    result = "https://storage.test/bulk.jsonl"
    lines = [
        {
            "id": "gid://shopify/Product/1",
            "title": "P1",
            "status": "ACTIVE",
            "updatedAt": "2026-11-01T00:00:00Z",
        },
        {**variant(2), "__parentId": "gid://shopify/Product/2"},
        {**variant(1), "__parentId": "gid://shopify/Product/1"},
        {
            "id": "gid://shopify/Product/2",
            "title": "P2",
            "status": "DRAFT",
            "updatedAt": "2026-11-01T00:00:00Z",
        },
    ]
    rsps.get(result, body="\n".join(json.dumps(line) for line in lines) + "\n")
    statuses = iter(["CREATED", "RUNNING", "COMPLETED"])
    fake.handlers["StorelinkBulkRunQuery"] = lambda v: {
        "bulkOperationRunQuery": {"bulkOperation": {"id": "gid://shopify/BulkOperation/1"}, "userErrors": []}
    }
    fake.handlers["StorelinkBulkStatus"] = lambda v: {
        "node": {"id": v["id"], "status": next(statuses), "url": result, "objectCount": "4"}
    }
    adapter = make()
    products = list(adapter.iter_catalog(None))
    assert fake.calls[0][1]["query"] == queries.BULK_CATALOG
    assert sorted(p.external_id for p in products) == ["gid://shopify/Product/1", "gid://shopify/Product/2"]
    assert adapter.iter_catalog_errors() == [] and adapter.skipped_count == 0


def test_the_finish_webhook_ends_the_wait_between_polls_and_polls_remain_the_fallback(shop):
    fake, _ = shop
    statuses = iter(["RUNNING", "RUNNING", "RUNNING", "COMPLETED"])
    fake.handlers["StorelinkBulkStatus"] = lambda v: {
        "node": {"id": v["id"], "status": next(statuses), "url": "https://storage.test/r.jsonl"}
    }
    waits: list[tuple[str, float]] = []
    answers = iter([False, False, True])  # two polls time out, then the webhook's word arrives
    slept: list[float] = []
    adapter = make()
    adapter.sleep = slept.append
    adapter.bulk_signal = lambda operation, timeout: waits.append((operation, timeout)) or next(answers)

    assert adapter.wait_for_bulk("gid://shopify/BulkOperation/7") == "https://storage.test/r.jsonl"
    op = "gid://shopify/BulkOperation/7"
    assert waits == [(op, 1.0), (op, 2.0), (op, 4.0)]  # the poll schedule is the longest each wait lasts
    assert slept == []  # the signal does the waiting
    assert fake.names().count("StorelinkBulkStatus") == 4


def test_without_bulk_access_the_catalog_is_paged(shop):
    fake, _ = shop
    fake.handlers["StorelinkBulkRunQuery"] = lambda v: {
        "bulkOperationRunQuery": {
            "bulkOperation": None,
            "userErrors": [{"code": "ACCESS_DENIED", "field": None, "message": "bulk access not granted"}],
        }
    }
    fake.handlers["StorelinkCatalogPage"] = lambda v: page([product(1, [variant(1)])])
    assert len(list(make().iter_catalog(None))) == 1


def test_a_failed_bulk_operation_is_retryable(shop):
    fake, _ = shop
    fake.handlers["StorelinkBulkRunQuery"] = lambda v: {
        "bulkOperationRunQuery": {"bulkOperation": {"id": "gid://shopify/BulkOperation/1"}, "userErrors": []}
    }
    fake.handlers["StorelinkBulkStatus"] = lambda v: {
        "node": {"id": v["id"], "status": "FAILED", "errorCode": "INTERNAL_SERVER_ERROR"}
    }
    with pytest.raises(RetryableError):
        list(make().iter_catalog(None))


def _levels_at(quantities: dict[str, int | None]) -> Handler:
    def answer(variables: dict[str, Any]) -> dict[str, Any]:
        nodes = []
        for ref in variables["ids"]:
            number = ref.rsplit("/", 1)[1]
            if number not in quantities:
                nodes.append(None)
                continue
            amount = quantities[number]
            level = None if amount is None else {"quantities": [{"name": "available", "quantity": amount}]}
            nodes.append(
                {
                    "id": ref,
                    "inventoryItem": {"id": f"gid://shopify/InventoryItem/{number}", "inventoryLevel": level},
                }
            )
        return {"nodes": nodes}

    return answer


def test_inventory_at_the_configured_location(shop):
    fake, _ = shop
    fake.handlers["StorelinkInventoryAtLocation"] = _levels_at({"1": 4, "2": None})
    refs = [
        "gid://shopify/ProductVariant/2",
        "gid://shopify/ProductVariant/9",
        "gid://shopify/ProductVariant/1",
    ]
    levels = make({"location": LOCATION}).get_inventory(refs)
    assert [(lv.variant_external_id[-1], lv.location_ref, lv.available) for lv in levels] == [
        ("2", LOCATION, 0),
        ("1", LOCATION, 4),
    ]
    assert fake.calls[0][1]["locationId"] == LOCATION


def test_paged_catalog_reads_stock_at_the_location(shop):
    fake, _ = shop
    fake.handlers["StorelinkCatalogPage"] = lambda v: page([product(1, [variant(1, quantity=50)])])
    fake.handlers["StorelinkInventoryAtLocation"] = _levels_at({"1": 3})
    (found,) = make({"location": LOCATION, "bulk": False}).iter_catalog(None)
    assert found.variants[0].quantity == 3


def test_set_inventory_compares_and_swaps_with_an_idempotency_key(shop):
    fake, _ = shop
    fake.handlers["StorelinkInventoryAtLocation"] = _levels_at({"1": 4, "2": 8})
    sets: list[dict[str, Any]] = []

    def setter(variables: dict[str, Any]) -> dict[str, Any]:
        sets.append(variables)
        errors = []
        if len(sets) == 1:
            errors = [{"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input"], "message": "stale"}]
        return {"inventorySetQuantities": {"inventoryAdjustmentGroup": {"id": "g"}, "userErrors": errors}}

    fake.handlers["StorelinkInventorySet"] = setter
    make({"location": LOCATION}).set_inventory(
        [
            InventoryLevel("gid://shopify/ProductVariant/1", "default", 6),
            InventoryLevel("gid://shopify/ProductVariant/2", LOCATION, 8),
        ]
    )
    assert len(sets) == 2, "a stale read is read again and set again"
    quantities = sets[-1]["input"]["quantities"]
    assert quantities == [
        {
            "inventoryItemId": "gid://shopify/InventoryItem/1",
            "locationId": LOCATION,
            "quantity": 6,
            "changeFromQuantity": 4,
        }
    ]
    assert sets[-1]["idempotencyKey"] and sets[-1]["input"]["name"] == "available"
    with pytest.raises(PermanentError):
        make().set_inventory([InventoryLevel("gid://shopify/ProductVariant/1", "default", 1)])


ORDER = Order(
    id="ord_1", currency="USD", lines=(OrderLine("gid://shopify/ProductVariant/1", 1, Money(950, "USD")),)
)


def test_create_order_looks_up_first_then_creates_once(shop):
    fake, _ = shop
    fake.handlers["StorelinkOrderFind"] = lambda v: {"orders": {"nodes": []}}
    fake.handlers["StorelinkOrderCreate"] = lambda v: {
        "orderCreate": {"order": {"id": "gid://shopify/Order/5", "name": "#1005"}, "userErrors": []}
    }
    ref = make({"inventory_behaviour": "BYPASS"}).create_order(ORDER, "key-1")
    assert ref == ExternalOrderRef("gid://shopify/Order/5", "#1005")
    assert fake.names() == [
        "StorelinkOrderFind",
        "StorelinkOrderFind",
        "StorelinkShop",
        "StorelinkOrderCreate",
    ]
    assert fake.calls[0][1]["query"] == "source_identifier:'key-1'"
    assert fake.calls[1][1]["query"] == f"tag:'{order_mapper.key_tag('key-1')}'"
    sent = fake.calls[3][1]
    assert sent["order"]["sourceIdentifier"] == "key-1" and sent["options"]["inventoryBehaviour"] == "BYPASS"


def test_an_order_in_another_currency_is_refused(shop):
    fake, _ = shop
    fake.handlers["StorelinkOrderFind"] = lambda v: {"orders": {"nodes": []}}
    euros = Order(
        id="o", currency="EUR", lines=(OrderLine("gid://shopify/ProductVariant/1", 1, Money(1, "EUR")),)
    )
    with pytest.raises(ValidationError):
        make().create_order(euros, "key-2")
    assert "StorelinkOrderCreate" not in fake.names()


def test_an_order_already_pushed_is_returned(shop):
    fake, _ = shop
    fake.handlers["StorelinkOrderFind"] = lambda v: {
        "orders": {
            "nodes": [
                {"id": "gid://shopify/Order/5", "name": "#1005", "sourceIdentifier": "key-1", "tags": []}
            ]
        }
    }
    assert make().create_order(ORDER, "key-1").external_id == "gid://shopify/Order/5"
    assert "StorelinkOrderCreate" not in fake.names()


def test_an_ambiguous_order_push_failure_is_not_repeated(shop, monkeypatch):
    from connector.infra import http as core_http

    monkeypatch.setattr(core_http, "_sleep", lambda seconds: None)
    fake, _ = shop
    fake.handlers["StorelinkOrderFind"] = lambda v: {"orders": {"nodes": []}}
    fake.handlers["StorelinkOrderCreate"] = lambda v: {"__status": 502}
    with pytest.raises(RetryableError):
        make().create_order(ORDER, "key-1")
    assert fake.names().count("StorelinkOrderCreate") == 1


def test_cancel_order(shop):
    fake, _ = shop
    fake.handlers["StorelinkOrderCancel"] = lambda v: {
        "orderCancel": {"job": {"id": "gid://shopify/Job/1", "done": False}, "orderCancelUserErrors": []}
    }
    make().cancel_order(ExternalOrderRef("gid://shopify/Order/5"))
    sent = fake.calls[0][1]
    assert sent["restock"] is True and sent["reason"] == "OTHER"
    assert sent["refundMethod"] == {"originalPaymentMethodsRefund": True}
    fake.handlers["StorelinkOrderCancel"] = lambda v: {
        "orderCancel": {
            "job": None,
            "orderCancelUserErrors": [{"code": "INVALID", "field": None, "message": "no"}],
        }
    }
    with pytest.raises(PermanentError):
        make().cancel_order(ExternalOrderRef("gid://shopify/Order/5"))
    with pytest.raises(ValidationError):
        make().cancel_order(ExternalOrderRef("5"))


def test_an_expired_token_is_refreshed_on_401_and_handed_over(shop):
    fake, rsps = shop
    rsps.post(
        f"{BASE}/admin/oauth/access_token",
        json={"access_token": "shpat_2", "refresh_token": "shprt_2", "expires_in": 3600},
    )
    answers = iter([{"__status": 401}, {"shop": {"currencyCode": "EUR"}}])
    fake.handlers["StorelinkShop"] = lambda v: next(answers)
    adapter = make(
        credentials={
            "access_token": "shpat_1",
            "refresh_token": "shprt_1",
            "client_id": "c",
            "client_secret": "s",
        }
    )
    stored: list[dict[str, str]] = []
    adapter.on_tokens_refreshed = stored.append
    assert adapter.currency() == "EUR"
    assert fake.tokens == ["shpat_1", "shpat_2"]
    assert stored[0]["access_token"] == "shpat_2" and stored[0]["refresh_token"] == "shprt_2"
    assert adapter.credentials["refresh_token"] == "shprt_2"


def test_a_token_past_its_expiry_is_refreshed_before_use(shop):
    fake, rsps = shop
    rsps.post(f"{BASE}/admin/oauth/access_token", json={"access_token": "shpat_2", "expires_in": 3600})
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    adapter = make(
        credentials={
            "access_token": "shpat_1",
            "access_token_expires_at": expired,
            "refresh_token": "r",
            "client_id": "c",
            "client_secret": "s",
        }
    )
    adapter.currency()
    assert fake.tokens == ["shpat_2"]


def signed(topic: str, body: bytes, secret: str = "secret") -> dict[str, str]:  # noqa: S107
    return {
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": webhook.signature(secret, body),
        "x-shopify-shop-domain": SHOP,
        "x-shopify-webhook-id": "d-1",
    }


def test_webhooks_verify_with_current_or_old_secret():
    body = b'{"id": 1}'
    adapter = make(credentials={"client_secret": "new", "old_client_secret": "old"})
    assert adapter.verify_webhook(signed("products/update", body, "old"), body)
    assert adapter.verify_webhook(signed("products/update", body, "new"), body)
    assert not adapter.verify_webhook(signed("products/update", body, "other"), body)
    assert not make(credentials={}).verify_webhook(signed("products/update", body), body)
    assert ShopifyAdapter.webhook_store_ref(signed("products/update", body)) == SHOP
    assert make().webhook_envelope(signed("products/update", body), body).delivery_id == "d-1"


def _items(levels: dict[str, list[tuple[str, int]]], tracked: bool = True) -> Handler:
    return lambda v: {
        "nodes": [
            {
                "id": item,
                "tracked": tracked,
                "inventoryLevels": {
                    "nodes": [
                        {"location": {"id": loc}, "quantities": [{"name": "available", "quantity": qty}]}
                        for loc, qty in levels[item]
                    ]
                },
            }
            if item in levels
            else None
            for item in v["ids"]
        ]
    }


def test_inventory_webhooks_parse_without_calling_the_store(shop):
    fake, _ = shop
    body = (
        b'{"inventory_item_id": 11, "location_id": 7, "available": 3, "updated_at": "2026-11-03T10:00:00Z"}'
    )
    headers = {**signed("inventory_levels/update", body), "x-shopify-triggered-at": "2026-11-03T10:00:00.5Z"}
    for config in ({"location": LOCATION}, {}):
        (event,) = make(config).parse_webhook("inventory_levels/update", headers, body)
        assert event.kind is StoreEventKind.INVENTORY_CHANGED
        assert event.external_id == "gid://shopify/InventoryItem/11"
        assert event.data == {
            "inventory_item_ref": "gid://shopify/InventoryItem/11",
            "location_ref": LOCATION,
            "available": 3,
        }
        assert event.occurred_at is not None and event.occurred_at.microsecond == 500_000
    assert fake.calls == []


def test_inventory_totals_sum_every_location_in_batches(shop):
    fake, _ = shop
    items = [f"gid://shopify/InventoryItem/{n}" for n in range(1, 8)]
    fake.handlers["StorelinkInventoryItemTotals"] = _items(
        {item: [(LOCATION, n), ("gid://shopify/Location/8", 10)] for n, item in enumerate(items[:6])}
    )
    totals = make().inventory_totals([*items, items[0], "gid://shopify/ProductVariant/1"])
    assert totals == {item: n + 10 for n, item in enumerate(items[:6])}
    assert [name for name, _ in fake.calls] == ["StorelinkInventoryItemTotals"] * 2
    fake.handlers["StorelinkInventoryItemTotals"] = _items({items[0]: [(LOCATION, 4)]}, tracked=False)
    assert make().inventory_totals(items[:1]) == {items[0]: None}


def test_register_webhooks_subscribes_every_topic(shop):
    fake, _ = shop
    seen: list[str] = []

    def subscribe(variables: dict[str, Any]) -> dict[str, Any]:
        seen.append(variables["topic"])
        errors = [{"field": ["address"], "message": "Address for this topic has already been taken"}]
        return {
            "webhookSubscriptionCreate": {
                "webhookSubscription": None,
                "userErrors": errors if len(seen) == 1 else [],
            }
        }

    fake.handlers["StorelinkWebhookSubscribe"] = subscribe
    topics = make().register_webhooks("https://connector.example/webhooks/shopify")
    assert (
        "inventory_levels/update" in topics
        and "INVENTORY_LEVELS_UPDATE" in seen
        and "APP_UNINSTALLED" in seen
    )
    fake.handlers["StorelinkWebhookSubscribe"] = lambda v: {
        "webhookSubscriptionCreate": {
            "webhookSubscription": None,
            "userErrors": [{"field": ["uri"], "message": "bad"}],
        }
    }
    with pytest.raises(PermanentError):
        make().register_webhooks("ftp://nowhere")
