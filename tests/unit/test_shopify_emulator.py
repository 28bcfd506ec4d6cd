"""The Shopify Admin API emulator: schema validation, pagination, cost throttling, bulk operations, orders,
inventory, OAuth, signed webhooks and injected faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from connector.sandbox.shopify import (
    GRAPHQL_PATH,
    ApiFault,
    ShopifyEmulator,
    WebhookFault,
    query_hmac,
    serve,
    sign,
    validate_document,
)

TOKEN = "shpat_sandbox"


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """Records webhook POSTs on 127.0.0.1."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self._cond:
            self.received.append((dict(request.headers), request.get_data()))
            self._cond.notify_all()
        return Response("ok")(environ, start_response)

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
def emulator(clock: FakeClock) -> Iterator[ShopifyEmulator]:
    shop = ShopifyEmulator(clock=clock, bulk_step_delay=0.01, webhook_retry_delays=())
    yield shop
    shop.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def gql(
    client: Client, query: str, variables: dict[str, Any] | None = None, token: str | None = TOKEN
) -> Any:
    headers = {"X-Shopify-Access-Token": token} if token else {}
    response = client.post(GRAPHQL_PATH, json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return orjson.loads(response.get_data())


# --- schema and validation -------------------------------------------------------------------------------


def test_validate_document_uses_the_real_schema() -> None:
    assert validate_document("{ shop { id name myshopifyDomain currencyCode } }") == []
    assert validate_document("{ shop { nmae } }") == ["Field 'nmae' doesn't exist on type 'Shop'"]
    # Shopify spells it inventoryBehaviour; the American spelling does not exist.
    errors = validate_document(
        "mutation { orderCreate(order: {lineItems: []}, options: {inventoryBehavior: BYPASS}) { order { id } } }"
    )
    assert errors and "inventoryBehavior" in errors[0]


def test_invalid_document_is_answered_like_shopify(emulator: ShopifyEmulator) -> None:
    client = Client(emulator.app)
    answer = gql(client, "{ shop { name foo } products(frist: 2) { nodes { id } } }")
    assert "data" not in answer
    assert answer["errors"][0] == {
        "message": "Field 'foo' doesn't exist on type 'Shop'",
        "locations": [{"line": 1, "column": 15}],
        "path": ["query", "shop", "foo"],
        "extensions": {"code": "undefinedField", "typeName": "Shop", "fieldName": "foo"},
    }
    assert answer["errors"][1]["message"] == "Field 'products' doesn't accept argument 'frist'"
    assert answer["errors"][1]["extensions"]["code"] == "argumentNotAccepted"
    missing = gql(client, "{ product { id } }")
    assert missing["errors"][0]["message"] == "Field 'product' is missing required arguments: id"


def test_bad_variables_are_reported_per_variable(emulator: ShopifyEmulator) -> None:
    answer = gql(Client(emulator.app), "query($id: ID!) { product(id: $id) { id } }", {})
    assert answer["errors"][0]["message"] == "Variable $id of type ID! was provided invalid value"
    assert answer["errors"][0]["extensions"]["value"] is None


def test_token_is_required(emulator: ShopifyEmulator) -> None:
    client = Client(emulator.app)
    for headers in ({}, {"X-Shopify-Access-Token": "shpat_wrong"}):
        response = client.post(GRAPHQL_PATH, json={"query": "{ shop { id } }"}, headers=headers)
        assert response.status_code == 401
        assert orjson.loads(response.get_data()) == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }


# --- reading ---------------------------------------------------------------------------------------------


PAGE = """query($after: String) { products(first: 3, after: $after) {
  edges { cursor node { id title } } nodes { id } pageInfo { hasNextPage endCursor } } }"""


def test_products_paginate_with_cursors(emulator: ShopifyEmulator) -> None:
    created = emulator.store.seed_catalog(products=7, variants_per_product=2, seed=3)
    client = Client(emulator.app)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = gql(client, PAGE, {"after": after})["data"]["products"]
        assert [edge["node"]["id"] for edge in page["edges"]] == [node["id"] for node in page["nodes"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        seen += [node["id"] for node in page["nodes"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == [product.id for product in created]


def test_connections_need_first_or_last(emulator: ShopifyEmulator) -> None:
    emulator.store.seed_catalog(products=1, variants_per_product=1)
    answer = gql(Client(emulator.app), "{ products { nodes { id } } }")
    assert answer["errors"][0]["message"] == "you must provide one of first or last"
    assert answer["data"] is None


def test_updated_at_filter_and_product_lookup(emulator: ShopifyEmulator, clock: FakeClock) -> None:
    products = emulator.store.seed_catalog(products=5, variants_per_product=2, seed=1)
    clock.advance(60)
    mark = emulator.store.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    clock.advance(60)
    emulator.store.update_product(products[2].id, title="Renamed")
    client = Client(emulator.app)
    query = f"{{ products(first: 10, query: \"updated_at:>'{mark}'\") {{ nodes {{ id title }} }} }}"
    assert gql(client, query)["data"]["products"]["nodes"] == [{"id": products[2].id, "title": "Renamed"}]
    item = products[0].variants[1].inventory_item
    one = gql(
        client,
        """query($id: ID!) { product(id: $id) { title variants(first: 5) { nodes { sku inventoryItem { id
          inventoryLevels(first: 5) { edges { node { location { id }
          quantities(names: ["available"]) { name quantity } } } } } } } } }""",
        {"id": products[0].id},
    )["data"]["product"]
    level = one["variants"]["nodes"][1]["inventoryItem"]["inventoryLevels"]["edges"][0]["node"]
    assert level["location"]["id"] == emulator.store.primary_location.id
    assert level["quantities"] == [{"name": "available", "quantity": item.available()}]
    assert gql(client, '{ product(id: "gid://shopify/Product/1") { id } }')["data"]["product"] is None
    nodes = gql(
        client,
        "query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } }",
        {"ids": [products[1].id, item.id]},
    )["data"]["nodes"]
    assert nodes == [
        {"id": products[1].id, "__typename": "Product"},
        {"id": item.id, "__typename": "InventoryItem"},
    ]
    locations = gql(client, "{ locations(first: 5) { nodes { id name } } }")["data"]["locations"]["nodes"]
    assert locations == [{"id": emulator.store.primary_location.id, "name": "Main warehouse"}]


# --- cost and throttling -----------------------------------------------------------------------------------


def test_throttled_in_http_200_then_recovers(emulator: ShopifyEmulator, clock: FakeClock) -> None:
    emulator.bucket.configure(maximum_available=100, restore_rate=10)
    emulator.store.seed_catalog(products=60, variants_per_product=1)
    client = Client(emulator.app)
    query = "{ products(first: 50) { nodes { id } } }"
    first = gql(client, query)
    assert first["extensions"]["cost"] == {
        "requestedQueryCost": 52,
        "actualQueryCost": 52,
        "throttleStatus": {"maximumAvailable": 100, "currentlyAvailable": 48, "restoreRate": 10},
    }
    throttled = gql(client, query)
    assert throttled == {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": 52,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 100, "currentlyAvailable": 48, "restoreRate": 10},
            }
        },
    }
    clock.advance(0.3)
    assert gql(client, query)["errors"][0]["extensions"]["code"] == "THROTTLED"
    clock.advance(0.1)
    recovered = gql(client, query)
    assert len(recovered["data"]["products"]["nodes"]) == 50
    assert recovered["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0


def test_unused_cost_is_refunded(emulator: ShopifyEmulator) -> None:
    emulator.store.seed_catalog(products=5, variants_per_product=2)
    cost = gql(
        Client(emulator.app), "{ products(first: 50) { nodes { id variants(first: 10) { nodes { id } } } } }"
    )["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 50 * (1 + 2 + 10)
    assert cost["actualQueryCost"] == 2 + 5 * (1 + 2 + 10)
    assert cost["throttleStatus"]["currentlyAvailable"] == 2000 - cost["actualQueryCost"]


def test_single_query_over_1000_points_is_refused(emulator: ShopifyEmulator) -> None:
    answer = gql(
        Client(emulator.app), "{ products(first: 250) { nodes { variants(first: 250) { nodes { id } } } } }"
    )
    assert answer["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert answer["errors"][0]["extensions"]["maxCost"] == 1000
    assert "data" not in answer
    assert answer["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 2000


# --- bulk operations --------------------------------------------------------------------------------------

BULK = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
  bulkOperation { id status } userErrors { field message code } } }"""
POLL = (
    "{ currentBulkOperation { id status url objectCount rootObjectCount errorCode createdAt completedAt } }"
)


def _wait_for_bulk(client: Client) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = gql(client, POLL)["data"]["currentBulkOperation"]
        if current["status"] not in ("CREATED", "RUNNING"):
            return dict(current)
        time.sleep(0.01)
    raise AssertionError("bulk operation did not finish")


def test_bulk_operation_writes_ungrouped_jsonl_with_parent_ids(emulator: ShopifyEmulator) -> None:
    products = emulator.store.seed_catalog(products=3, variants_per_product=2, seed=5)
    client = Client(emulator.app)
    inner = "{ products { edges { node { id title variants { edges { node { id sku } } } } } } }"
    started = gql(client, BULK, {"q": inner})["data"]["bulkOperationRunQuery"]
    assert started["userErrors"] == []
    assert started["bulkOperation"]["status"] == "CREATED"
    done = _wait_for_bulk(client)
    assert done["id"] == started["bulkOperation"]["id"]
    assert done["status"] == "COMPLETED"
    assert (done["objectCount"], done["rootObjectCount"], done["errorCode"]) == ("9", "3", None)
    assert done["completedAt"] is not None
    path = urlsplit(done["url"]).path
    body = client.get(path).get_data()
    lines = [orjson.loads(line) for line in body.splitlines()]
    assert len(lines) == 9
    parents = {product.id: product for product in products}
    for line in lines:
        if "__parentId" in line:
            variant_ids = [variant.id for variant in parents[line["__parentId"]].variants]
            assert line["id"] in variant_ids
            assert set(line) == {"id", "sku", "__parentId"}
        else:
            assert line["id"] in parents
            assert "variants" not in line
    # Not grouped: the first product's variants come after the second product.
    assert "__parentId" not in lines[1]
    assert lines[2]["__parentId"] == products[0].id
    node = gql(
        client, "query($id: ID!) { node(id: $id) { ... on BulkOperation { status } } }", {"id": done["id"]}
    )
    assert node["data"]["node"] == {"status": "COMPLETED"}


def test_bulk_query_is_checked_like_shopify(emulator: ShopifyEmulator) -> None:
    client = Client(emulator.app)
    no_connection = gql(client, BULK, {"q": "{ shop { id } }"})["data"]["bulkOperationRunQuery"]
    assert no_connection["bulkOperation"] is None
    assert no_connection["userErrors"][0]["code"] == "INVALID"
    missing_id = gql(
        client, BULK, {"q": "{ products { edges { node { title variants { edges { node { id } } } } } } }"}
    )
    assert (
        "must select the 'id' field"
        in missing_id["data"]["bulkOperationRunQuery"]["userErrors"][0]["message"]
    )
    invalid = gql(client, BULK, {"q": "{ products { edges { node { nope } } } }"})
    assert "doesn't exist" in invalid["data"]["bulkOperationRunQuery"]["userErrors"][0]["message"]


# --- orders and inventory ----------------------------------------------------------------------------------

ORDER_CREATE = """mutation($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
  orderCreate(order: $order, options: $options) {
    order { id name sourceIdentifier tags email displayFinancialStatus
      totalPriceSet { shopMoney { amount currencyCode } } totalTaxSet { shopMoney { amount } }
      lineItems(first: 5) { nodes { sku quantity variant { id } } } shippingAddress { city countryCodeV2 } }
    userErrors { field message code } } }"""


def _order_input(variant_id: str, source: str) -> dict[str, Any]:
    money = {"shopMoney": {"amount": "20.00", "currencyCode": "USD"}}
    return {
        "email": "buyer@example.com",
        "sourceIdentifier": source,
        "sourceName": "storelink",
        "tags": ["storelink", f"sl-{source}"],
        "lineItems": [{"variantId": variant_id, "quantity": 2, "priceSet": money}],
        "taxLines": [
            {
                "title": "VAT",
                "rate": "0.1",
                "priceSet": {"shopMoney": {"amount": "4.00", "currencyCode": "USD"}},
            }
        ],
        "transactions": [
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": "storelink",
                "amountSet": {"shopMoney": {"amount": "44.00", "currencyCode": "USD"}},
            }
        ],
        "shippingAddress": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "address1": "1 Main St",
            "city": "Austin",
            "countryCode": "US",
            "zip": "73301",
        },
    }


def test_order_create_then_find_by_source_identifier(emulator: ShopifyEmulator) -> None:
    product = emulator.store.seed_catalog(products=1, variants_per_product=1, available=(10, 10))[0]
    variant = product.variants[0]
    client = Client(emulator.app)
    created = gql(
        client,
        ORDER_CREATE,
        {
            "order": _order_input(variant.id, "ord-42"),
            "options": {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"},
        },
    )
    assert created["extensions"]["cost"]["requestedQueryCost"] == 10
    payload = created["data"]["orderCreate"]
    assert payload["userErrors"] == []
    order = payload["order"]
    assert order["name"] == "#1001"
    assert order["displayFinancialStatus"] == "PAID"
    assert order["totalPriceSet"]["shopMoney"] == {"amount": "44.00", "currencyCode": "USD"}
    assert order["totalTaxSet"]["shopMoney"]["amount"] == "4.00"
    assert order["lineItems"]["nodes"] == [{"sku": variant.sku, "quantity": 2, "variant": {"id": variant.id}}]
    assert order["shippingAddress"]["city"] == "Austin"
    level = variant.inventory_item.levels[emulator.store.primary_location.legacy_resource_id]
    assert (level.quantities["available"], level.quantities["committed"], level.quantities["on_hand"]) == (
        8,
        2,
        10,
    )
    found = gql(client, '{ orders(first: 5, query: "source_identifier:ord-42") { nodes { id } } }')
    assert found["data"]["orders"]["nodes"] == [{"id": order["id"]}]
    by_tag = gql(client, "{ orders(first: 5, query: \"tag:'sl-ord-42'\") { nodes { id } } }")
    assert by_tag["data"]["orders"]["nodes"] == [{"id": order["id"]}]
    assert (
        gql(client, '{ orders(first: 5, query: "source_identifier:other") { nodes { id } } }')["data"][
            "orders"
        ]["nodes"]
        == []
    )
    lookup = gql(client, "query($id: ID!) { order(id: $id) { sourceIdentifier } }", {"id": order["id"]})
    assert lookup["data"]["order"] == {"sourceIdentifier": "ord-42"}


def test_order_create_obeying_policy_refuses_oversell(emulator: ShopifyEmulator) -> None:
    variant = emulator.store.seed_catalog(products=1, variants_per_product=1, available=(1, 1))[0].variants[0]
    answer = gql(
        Client(emulator.app),
        ORDER_CREATE,
        {
            "order": _order_input(variant.id, "x"),
            "options": {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"},
        },
    )
    assert answer["data"]["orderCreate"]["order"] is None
    assert answer["data"]["orderCreate"]["userErrors"][0]["code"] == "INVENTORY_CLAIM_FAILED"
    assert emulator.store.orders == {}


def test_order_cancel_runs_as_a_job(emulator: ShopifyEmulator, clock: FakeClock) -> None:
    variant = emulator.store.seed_catalog(products=1, variants_per_product=1, available=(5, 5))[0].variants[0]
    client = Client(emulator.app)
    order_id = gql(
        client,
        ORDER_CREATE,
        {
            "order": _order_input(variant.id, "c-1"),
            "options": {"inventoryBehaviour": "DECREMENT_IGNORING_POLICY"},
        },
    )["data"]["orderCreate"]["order"]["id"]
    cancel = gql(
        client,
        """mutation($id: ID!) { orderCancel(orderId: $id, reason: CUSTOMER, restock: true,
        refund: true) { job { id done } orderCancelUserErrors { code message } } }""",
        {"id": order_id},
    )
    job = cancel["data"]["orderCancel"]["job"]
    assert job["done"] is False
    check = "query($id: ID!) { order(id: $id) { cancelledAt cancelReason displayFinancialStatus } }"
    assert gql(client, check, {"id": order_id})["data"]["order"]["cancelledAt"] is None
    clock.advance(1)
    assert gql(client, "query($id: ID!) { job(id: $id) { done } }", {"id": job["id"]})["data"]["job"] == {
        "done": True
    }
    order = gql(client, check, {"id": order_id})["data"]["order"]
    assert order["cancelReason"] == "CUSTOMER"
    assert order["cancelledAt"] is not None
    assert order["displayFinancialStatus"] == "REFUNDED"
    assert variant.inventory_item.available() == 5
    again = gql(
        client,
        """mutation($id: ID!) { orderCancel(orderId: $id, reason: OTHER, restock: false) {
        job { id } orderCancelUserErrors { code } } }""",
        {"id": order_id},
    )["data"]["orderCancel"]
    assert again == {"job": None, "orderCancelUserErrors": [{"code": "INVALID"}]}


SET_QUANTITIES = """mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id reason changes { name delta quantityAfterChange } }
    userErrors { field message code } } }"""


def test_inventory_set_quantities_needs_idempotency_and_compares(emulator: ShopifyEmulator) -> None:
    variant = emulator.store.seed_catalog(products=1, variants_per_product=1, available=(4, 4))[0].variants[0]
    item, location = variant.inventory_item, emulator.store.primary_location
    client = Client(emulator.app)

    def entry(quantity: int, change_from: int | None) -> dict[str, Any]:
        return {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": item.id,
                    "locationId": location.id,
                    "quantity": quantity,
                    "changeFromQuantity": change_from,
                }
            ],
        }

    no_key = gql(
        client,
        SET_QUANTITIES.replace(" @idempotent(key: $key)", "").replace(", $key: String!", ""),
        {"input": entry(9, 4)},
    )
    assert no_key["data"]["inventorySetQuantities"] is None
    assert "@idempotent" in no_key["errors"][0]["message"]
    assert item.available() == 4

    done = gql(client, SET_QUANTITIES, {"input": entry(9, 4), "key": "k-1"})["data"]["inventorySetQuantities"]
    assert done["userErrors"] == []
    assert {"name": "available", "delta": 5, "quantityAfterChange": 9} in done["inventoryAdjustmentGroup"][
        "changes"
    ]
    assert item.available() == 9
    emulator.store.set_inventory(item.id, location.id, 3)
    replay = gql(client, SET_QUANTITIES, {"input": entry(9, 4), "key": "k-1"})["data"][
        "inventorySetQuantities"
    ]
    assert replay["inventoryAdjustmentGroup"]["id"] == done["inventoryAdjustmentGroup"]["id"]
    assert item.available() == 3
    mismatch = gql(client, SET_QUANTITIES, {"input": entry(7, None), "key": "k-1"})["data"][
        "inventorySetQuantities"
    ]
    assert mismatch["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    stale = gql(client, SET_QUANTITIES, {"input": entry(7, 4), "key": "k-2"})["data"][
        "inventorySetQuantities"
    ]
    assert stale["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert stale["inventoryAdjustmentGroup"] is None
    omitted = entry(7, None)
    del omitted["quantities"][0]["changeFromQuantity"]
    refused = gql(client, SET_QUANTITIES, {"input": omitted, "key": "k-3"})["data"]["inventorySetQuantities"]
    assert refused["userErrors"][0]["field"] == ["input", "quantities", "0", "changeFromQuantity"]
    blind = gql(client, SET_QUANTITIES, {"input": entry(7, None), "key": "k-4"})["data"][
        "inventorySetQuantities"
    ]
    assert blind["userErrors"] == []
    assert item.available() == 7


# --- OAuth -------------------------------------------------------------------------------------------------


def test_query_hmac_matches_shopify_documented_vector() -> None:
    params = {
        "code": "0907a61c0c8d55e99db179b68161bc00",
        "shop": "some-shop.myshopify.com",
        "state": "0.6784241404160823",
        "timestamp": "1337178173",
        "hmac": "ignored",
    }
    assert query_hmac(params, "hush") == "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"


def test_oauth_round_trip_with_refresh_rotation(emulator: ShopifyEmulator, clock: FakeClock) -> None:
    client = Client(emulator.app)
    app = emulator.client
    redirect = client.get(
        "/admin/oauth/authorize",
        query_string={
            "client_id": app.client_id,
            "scope": "read_products,write_orders",
            "redirect_uri": "https://connector.example.com/auth/callback",
            "state": "nonce-1",
            "grant_options[]": "",
        },
    )
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    assert location.netloc == "connector.example.com"
    params = dict(parse_qsl(location.query))
    assert set(params) == {"code", "hmac", "host", "shop", "state", "timestamp"}
    assert params["state"] == "nonce-1"
    assert params["shop"] == emulator.store.shop.myshopify_domain
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    expected = hmac.new(app.client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(params["hmac"], expected)

    bad = client.post(
        "/admin/oauth/access_token",
        data={"client_id": app.client_id, "client_secret": "wrong", "code": params["code"], "expiring": "1"},
    )
    assert bad.status_code == 400
    assert orjson.loads(bad.get_data())["error"] == "invalid_client"
    granted = client.post(
        "/admin/oauth/access_token",
        data={
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "code": params["code"],
            "expiring": "1",
        },
    )
    assert granted.status_code == 200
    first = orjson.loads(granted.get_data())
    assert set(first) == {"access_token", "scope", "expires_in", "refresh_token", "refresh_token_expires_in"}
    assert (first["scope"], first["expires_in"], first["refresh_token_expires_in"]) == (
        "read_products,write_orders",
        3600,
        90 * 24 * 3600,
    )
    reused = client.post(
        "/admin/oauth/access_token",
        data={"client_id": app.client_id, "client_secret": app.client_secret, "code": params["code"]},
    )
    assert reused.status_code == 400
    assert "errors" not in gql(client, "{ shop { id } }", token=first["access_token"])

    def refresh(token: str) -> Any:
        return client.post(
            "/admin/oauth/access_token",
            json={
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": token,
            },
        )

    clock.advance(3000)
    rotated = refresh(first["refresh_token"])
    assert rotated.status_code == 200
    second = orjson.loads(rotated.get_data())
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert "errors" not in gql(client, "{ shop { id } }", token=second["access_token"])
    # Once the replacement is in use, the old refresh token is refused.
    stale = refresh(first["refresh_token"])
    assert stale.status_code == 400
    assert orjson.loads(stale.get_data())["error"] == "invalid_grant"
    clock.advance(601)
    expired = client.post(
        GRAPHQL_PATH,
        json={"query": "{ shop { id } }"},
        headers={"X-Shopify-Access-Token": first["access_token"]},
    )
    assert expired.status_code == 401
    assert refresh(second["refresh_token"]).status_code == 200


# --- webhooks ----------------------------------------------------------------------------------------------


def test_webhook_signature_vector() -> None:
    body = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
    assert sign("test-webhook-secret", body) == "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="


def test_webhooks_are_signed_and_shaped_like_shopify(receiver: Receiver) -> None:
    with serve(webhook_retry_delays=()) as server:
        store = server.store
        variant = store.seed_catalog(products=1, variants_per_product=1, available=(2, 2))[0].variants[0]
        headers = {"X-Shopify-Access-Token": TOKEN}
        created = requests.post(
            server.graphql_url,
            headers=headers,
            timeout=5,
            json={
                "query": """mutation($uri: String!) { webhookSubscriptionCreate(topic: INVENTORY_LEVELS_UPDATE,
              webhookSubscription: {uri: $uri, format: JSON}) { webhookSubscription { id topic uri }
              userErrors { message } } }""",
                "variables": {"uri": receiver.url},
            },
        ).json()["data"]["webhookSubscriptionCreate"]
        assert created["userErrors"] == []
        assert created["webhookSubscription"]["topic"] == "INVENTORY_LEVELS_UPDATE"
        listed = requests.post(
            server.graphql_url,
            headers=headers,
            timeout=5,
            json={"query": "{ webhookSubscriptions(first: 10) { nodes { id uri } } }"},
        ).json()
        assert listed["data"]["webhookSubscriptions"]["nodes"] == [
            {"id": created["webhookSubscription"]["id"], "uri": receiver.url}
        ]

        store.set_inventory(variant.inventory_item.id, store.primary_location.id, 6)
        ((got_headers, body),) = receiver.wait_for(1)
        secret = server.emulator.client.client_secret
        digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        assert hmac.compare_digest(got_headers["X-Shopify-Hmac-Sha256"], digest)
        assert got_headers["X-Shopify-Topic"] == "inventory_levels/update"
        assert got_headers["X-Shopify-Shop-Domain"] == store.shop.myshopify_domain
        assert got_headers["X-Shopify-Api-Version"] == "2026-10"
        assert got_headers["X-Shopify-Webhook-Id"] and got_headers["X-Shopify-Event-Id"]
        assert got_headers["X-Shopify-Triggered-At"].endswith("Z")
        document = orjson.loads(body)
        assert document == {
            "inventory_item_id": variant.inventory_item.legacy_resource_id,
            "location_id": store.primary_location.legacy_resource_id,
            "available": 6,
            "updated_at": document["updated_at"],
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{store.primary_location.legacy_resource_id}"
            f"?inventory_item_id={variant.inventory_item.legacy_resource_id}",
        }

        deleted = requests.post(
            server.graphql_url,
            headers=headers,
            timeout=5,
            json={
                "query": "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId } }",
                "variables": {"id": created["webhookSubscription"]["id"]},
            },
        ).json()
        assert (
            deleted["data"]["webhookSubscriptionDelete"]["deletedWebhookSubscriptionId"]
            == created["webhookSubscription"]["id"]
        )
        store.set_inventory(variant.inventory_item.id, store.primary_location.id, 1)
        assert server.emulator.webhooks.flush()
        assert len(receiver.received) == 1


def test_order_and_product_webhooks_and_bulk_finish(emulator: ShopifyEmulator, receiver: Receiver) -> None:
    for topic in (
        "orders/create",
        "orders/fulfilled",
        "refunds/create",
        "products/update",
        "bulk_operations/finish",
    ):
        emulator.webhooks.subscribe(topic, receiver.url)
    product = emulator.store.seed_catalog(products=1, variants_per_product=2)[0]
    client = Client(emulator.app)
    created = gql(client, ORDER_CREATE, {"order": _order_input(product.variants[0].id, "w-1")})
    order_id = created["data"]["orderCreate"]["order"]["id"]
    emulator.store.fulfill_order(order_id, tracking_number="1Z999")
    emulator.store.refund_order(order_id, restock=False)
    emulator.store.update_product(product.id, title="New title")
    gql(client, BULK, {"q": "{ products { edges { node { id } } } }"})
    _wait_for_bulk(client)
    assert emulator.webhooks.flush()
    by_topic = {headers["X-Shopify-Topic"]: orjson.loads(body) for headers, body in receiver.wait_for(5)}
    order = by_topic["orders/create"]
    assert order["admin_graphql_api_id"] == order_id
    assert order["source_identifier"] == "w-1"
    assert order["line_items"][0]["variant_id"] == product.variants[0].legacy_resource_id
    assert order["total_price"] == "44.00"
    assert by_topic["orders/fulfilled"]["fulfillment_status"] == "fulfilled"
    assert by_topic["refunds/create"]["order_id"] == order["id"]
    assert by_topic["products/update"]["title"] == "New title"
    assert [v["id"] for v in by_topic["products/update"]["variants"]] == [
        v.legacy_resource_id for v in product.variants
    ]
    assert by_topic["bulk_operations/finish"]["status"] == "completed"


def test_webhook_faults_duplicate_reorder_drop(emulator: ShopifyEmulator, receiver: Receiver) -> None:
    emulator.webhooks.subscribe("inventory_levels/update", receiver.url)
    item = emulator.store.seed_catalog(products=1, variants_per_product=1)[0].variants[0].inventory_item
    emulator.webhooks.plan(
        WebhookFault(duplicate=True), WebhookFault(reorder=True), WebhookFault(), WebhookFault(drop=True)
    )
    for available in (1, 2, 3, 4):
        emulator.store.set_inventory(item.id, None, available)
    assert emulator.webhooks.flush()
    got = receiver.wait_for(4)
    assert [orjson.loads(body)["available"] for _, body in got] == [1, 1, 3, 2]
    assert got[0][0]["X-Shopify-Webhook-Id"] == got[1][0]["X-Shopify-Webhook-Id"]
    dropped = [a for a in emulator.webhooks.attempts() if a.error == "dropped"]
    assert [orjson.loads(a.body)["available"] for a in dropped] == [4]


# --- API faults ---------------------------------------------------------------------------------------------


def test_api_faults_status_retry_after_latency_and_drop(emulator: ShopifyEmulator) -> None:
    client = Client(emulator.app)
    emulator.faults.plan(ApiFault.server_error(503), ApiFault.too_many_requests(3), ApiFault.slow(0.05))
    body = {"query": "{ shop { id } }"}
    headers = {"X-Shopify-Access-Token": TOKEN}
    assert client.post(GRAPHQL_PATH, json=body, headers=headers).status_code == 503
    limited = client.post(GRAPHQL_PATH, json=body, headers=headers)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    started = time.monotonic()
    assert client.post(GRAPHQL_PATH, json=body, headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.05
    assert client.post(GRAPHQL_PATH, json=body, headers=headers).status_code == 200

    with serve(emulator=emulator) as server:
        server.emulator.faults.plan(ApiFault.dropped(), ApiFault.slow(0.5))
        with pytest.raises(requests.ConnectionError):
            requests.post(server.graphql_url, json=body, headers=headers, timeout=2)
        with pytest.raises(requests.Timeout):
            requests.post(server.graphql_url, json=body, headers=headers, timeout=0.1)


def test_random_faults_repeat_with_the_same_seed() -> None:
    def statuses(seed: int) -> list[int]:
        shop = ShopifyEmulator()
        try:
            shop.faults.set_random(0.5, [ApiFault.server_error(502)], seed=seed)
            client = Client(shop.app)
            return [
                client.post(
                    GRAPHQL_PATH, json={"query": "{ shop { id } }"}, headers={"X-Shopify-Access-Token": TOKEN}
                ).status_code
                for _ in range(20)
            ]
        finally:
            shop.close()

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 502} == set(first)


# --- seeding -------------------------------------------------------------------------------------------------


def test_seed_catalog_scales_linearly() -> None:
    shop = ShopifyEmulator()
    try:
        started = time.monotonic()
        products = shop.store.seed_catalog(products=5000, variants_per_product=3, seed=2)
        elapsed = time.monotonic() - started
        assert len(products) == 5000
        assert len(shop.store.variants) == len(shop.store.inventory_items) == 15000
        skus = {variant.sku for variant in shop.store.variants.values()}
        barcodes = {variant.barcode for variant in shop.store.variants.values()}
        assert len(skus) == len(barcodes) == 15000
        assert all(len(item.levels) == 1 for item in shop.store.inventory_items.values())
        assert elapsed < 10
    finally:
        shop.close()


ADJUST = """mutation($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { changes(quantityNames: ["available"]) { name delta quantityAfterChange } }
    userErrors { field code } } }"""


def test_inventory_adjust_quantities_applies_deltas_once(
    emulator: ShopifyEmulator, receiver: Receiver
) -> None:
    emulator.webhooks.subscribe("inventory_levels/update", receiver.url)
    item = (
        emulator.store.seed_catalog(products=1, variants_per_product=1, available=(4, 4))[0]
        .variants[0]
        .inventory_item
    )
    client = Client(emulator.app)
    change = {
        "inventoryItemId": item.id,
        "locationId": emulator.store.primary_location.id,
        "delta": -3,
        "changeFromQuantity": 4,
    }
    variables = {"key": "adj-1", "input": {"name": "available", "reason": "correction", "changes": [change]}}
    first = gql(client, ADJUST, variables)["data"]["inventoryAdjustQuantities"]
    assert first == {
        "inventoryAdjustmentGroup": {
            "changes": [{"name": "available", "delta": -3, "quantityAfterChange": 1}]
        },
        "userErrors": [],
    }
    assert gql(client, ADJUST, variables)["data"]["inventoryAdjustQuantities"] == first
    assert item.available() == 1
    assert emulator.webhooks.flush()
    assert [orjson.loads(body)["available"] for _, body in receiver.wait_for(1)] == [1]


def test_webhook_delay_fault_holds_a_delivery(emulator: ShopifyEmulator, receiver: Receiver) -> None:
    emulator.webhooks.subscribe("products/update", receiver.url)
    product = emulator.store.seed_catalog(products=1, variants_per_product=1)[0]
    emulator.webhooks.plan(WebhookFault(delay=0.3))
    started = time.monotonic()
    emulator.store.update_product(product.id, title="Later")
    emulator.store.update_product(product.id, title="Sooner")
    got = receiver.wait_for(2)
    assert [orjson.loads(body)["title"] for _, body in got] == ["Sooner", "Later"]
    assert time.monotonic() - started >= 0.3


def test_subscription_filter_and_large_ids(receiver: Receiver) -> None:
    from connector.sandbox.shopify import Store

    shop = ShopifyEmulator(store=Store(large_ids=True), webhook_retry_delays=())
    try:
        item = shop.store.seed_catalog(products=1, variants_per_product=1)[0].variants[0].inventory_item
        assert item.legacy_resource_id > 2**53
        created = shop.query(
            """mutation($uri: String!) { webhookSubscriptionCreate(topic: INVENTORY_LEVELS_UPDATE,
              webhookSubscription: {uri: $uri, filter: "available:>5"}) { userErrors { message } } }""",
            {"uri": receiver.url},
        )
        assert created["data"]["webhookSubscriptionCreate"]["userErrors"] == []
        for available in (3, 9):
            shop.store.set_inventory(item.id, None, available)
        assert shop.webhooks.flush()
        got = receiver.wait_for(1)
        assert len(got) == 1
        body = orjson.loads(got[0][1])
        assert (body["available"], body["inventory_item_id"]) == (9, item.legacy_resource_id)
    finally:
        shop.close()


def test_sort_by_updated_at_pages_in_change_order(emulator: ShopifyEmulator, clock: FakeClock) -> None:
    products = emulator.store.seed_catalog(products=5, variants_per_product=1)
    clock.advance(10)
    emulator.store.update_product(products[0].id, vendor="Changed")
    client = Client(emulator.app)
    query = """query($after: String) { products(first: 2, after: $after, sortKey: UPDATED_AT) {
      nodes { id } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = gql(client, query, {"after": after})["data"]["products"]
        seen += [node["id"] for node in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [p.id for p in products[1:]] + [products[0].id]
    newest = gql(client, "{ products(first: 1, sortKey: UPDATED_AT, reverse: true) { nodes { id } } }")
    assert newest["data"]["products"]["nodes"] == [{"id": products[0].id}]


def test_bulk_walker_matches_graphql_execution(emulator: ShopifyEmulator) -> None:
    from graphql import execute_sync, parse

    from connector.sandbox.shopify.api import field_resolver, type_resolver
    from connector.sandbox.shopify.bulk import flatten, flatten_nodes
    from connector.sandbox.shopify.schema import load_schema
    from connector.sandbox.shopify.store import Context
    from connector.sandbox.shopify.walker import Walker

    emulator.store.seed_catalog(products=4, variants_per_product=3, seed=9)
    document = parse(
        """{ items: products { edges { node { __typename id ...Fields
             media { edges { node { id ... on MediaImage { image { url } } } } }
             variants { nodes { id sku price selectedOptions { name value } inventoryItem { id tracked } } } } } } }
           fragment Fields on Product { title handle status updatedAt totalInventory }"""
    )
    for grouped in (False, True):
        result = execute_sync(
            load_schema(),
            document,
            context_value=Context(emulator.store, bulk=True),
            field_resolver=field_resolver,
            type_resolver=type_resolver,
        )
        assert result.errors is None
        expected, roots = flatten(result.data or {}, grouped)
        lines: list[bytes] = []
        held: list[bytes] = []
        for _, nodes in Walker(load_schema(), document, Context(emulator.store, bulk=True)).roots():
            chunk, _, held = flatten_nodes(nodes, grouped, held)
            lines += chunk
        assert lines + held == expected
        assert (roots, len(expected)) == (4, 16)


def test_fulfil_and_refund_move_inventory_states(emulator: ShopifyEmulator) -> None:
    variant = emulator.store.seed_catalog(products=1, variants_per_product=1, available=(5, 5))[0].variants[0]
    level = variant.inventory_item.levels[emulator.store.primary_location.legacy_resource_id]
    answer = emulator.query(
        ORDER_CREATE,
        {
            "order": _order_input(variant.id, "f-1"),
            "options": {"inventoryBehaviour": "DECREMENT_IGNORING_POLICY"},
        },
    )
    order_id = answer["data"]["orderCreate"]["order"]["id"]

    def states() -> tuple[int, int, int]:
        return level.quantities["available"], level.quantities["committed"], level.quantities["on_hand"]

    assert states() == (3, 2, 5)
    emulator.store.fulfill_order(order_id)
    assert states() == (3, 0, 3)
    emulator.store.refund_order(order_id, restock=True)
    assert states() == (5, 0, 5)
    order = emulator.query(
        "query($id: ID!) { order(id: $id) { displayFulfillmentStatus displayFinancialStatus } }",
        {"id": order_id},
    )["data"]["order"]
    assert order == {"displayFulfillmentStatus": "FULFILLED", "displayFinancialStatus": "REFUNDED"}
