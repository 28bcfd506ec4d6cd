"""Catalog reads of the Platform API over HTTP: keys, scoping, prices, sellable stock, filters, cursors, cost."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Blueprint, Flask, Response
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import event, update

from connector.api import common
from connector.infra.models import Merchant, PlatformClient
from connector.merchants import clients
from connector.web import problems
from tests.helpers import ApiClient, assert_problem
from tests.integration.api_support import (
    Runtime,
    add_merchant,
    add_product,
    make_client,
    seed_catalog,
)

CATALOG_GETS = ["/v1/merchants", "/v1/merchants/1", "/v1/products", "/v1/products/1", "/v1/variants/1"]


@pytest.fixture
def http(client: FlaskClient) -> FlaskClient:
    return client


def get_ok(http: FlaskClient, path: str, auth: dict[str, str], **query: Any) -> Any:
    response = http.get(path, headers=auth, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


@contextmanager
def counting_queries(rt: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", record)


# --- authentication ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sl_live_" + "x" * 32},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
)
def test_catalog_requires_a_valid_key(
    http: FlaskClient, api_client: ApiClient, headers: dict[str, str]
) -> None:
    for path in CATALOG_GETS:
        response = http.get(path, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="storelink"'


def test_key_lookups_are_cached_briefly_and_deactivation_applies_after(
    rt: Runtime, app: Flask, http: FlaskClient, api_client: ApiClient
) -> None:
    client_id, auth = api_client
    get_ok(http, "/v1/merchants", auth)
    with counting_queries(rt) as statements:
        get_ok(http, "/v1/merchants", auth)
    assert not any("platform_clients" in statement for statement in statements)  # served from the cache

    with rt.db.session() as session:
        clients.deactivate(session, client_id)
    common.key_cache(app).clear()  # as KEY_CACHE_SECONDS passing would
    assert_problem(http.get("/v1/merchants", headers=auth), 401, "unauthorized")
    with counting_queries(rt) as statements:  # failures are not cached: every attempt looks the key up
        assert_problem(http.get("/v1/merchants", headers=auth), 401, "unauthorized")
    assert any("platform_clients" in statement for statement in statements)


def test_key_cache_expires_and_stays_bounded() -> None:
    cache = common.KeyCache(ttl=60, max_entries=3)
    for index in range(5):
        cache.put(f"digest-{index}", common.ApiClient(id=index, name=str(index)))
    assert cache.get("digest-0") is None and cache.get("digest-1") is None
    assert cache.get("digest-4") == common.ApiClient(id=4, name="4")
    expired = common.KeyCache(ttl=-1)
    expired.put("d", common.ApiClient(id=1, name="x"))
    assert expired.get("d") is None


# --- scoping ----------------------------------------------------------------------------------------------


def test_clients_see_only_their_own_merchants(rt: Runtime, http: FlaskClient) -> None:
    a_id, a_auth = make_client(rt, "platform-a")
    b_id, b_auth = make_client(rt, "platform-b")
    mine = seed_catalog(rt, a_id, products=2, name="mine")
    theirs = seed_catalog(rt, b_id, products=2, name="theirs")
    orphan = seed_catalog(rt, a_id, products=1, name="orphan")
    with rt.db.session() as session:  # a merchant no client was given is nobody's
        session.execute(
            update(Merchant).where(Merchant.id == orphan.merchant_id).values(platform_client_id=None)
        )

    merchants = get_ok(http, "/v1/merchants", a_auth)
    assert [m["id"] for m in merchants["data"]] == [mine.merchant_id]
    assert merchants["data"][0]["name"] == "mine" and merchants["next_cursor"] is None
    assert "config" not in merchants["data"][0] and "credentials_encrypted" not in merchants["data"][0]
    products = get_ok(http, "/v1/products", a_auth)
    assert [p["id"] for p in products["data"]] == mine.product_ids
    assert get_ok(http, "/v1/products", a_auth, merchant_id=theirs.merchant_id)["data"] == []

    for path, code in [
        (f"/v1/merchants/{theirs.merchant_id}", "merchant_not_found"),
        (f"/v1/products/{theirs.product_ids[0]}", "product_not_found"),
        (f"/v1/variants/{theirs.variant_ids[0]}", "variant_not_found"),
        (f"/v1/merchants/{orphan.merchant_id}", "merchant_not_found"),
        (f"/v1/products/{orphan.product_ids[0]}", "product_not_found"),
    ]:
        assert_problem(http.get(path, headers=a_auth), 404, code)
    assert get_ok(http, f"/v1/products/{theirs.product_ids[0]}", b_auth)["merchant_id"] == theirs.merchant_id
    assert get_ok(http, f"/v1/variants/{mine.variant_ids[0]}", a_auth)["id"] == mine.variant_ids[0]


def test_visible_merchants_is_the_scoping_rule(rt: Runtime) -> None:
    a_id, _ = make_client(rt, "platform-a")
    b_id, _ = make_client(rt, "platform-b")
    mine = add_merchant(rt, a_id)
    add_merchant(rt, b_id)
    add_merchant(rt, None)
    with rt.db.session() as session:
        client = session.get(PlatformClient, a_id)
        assert client is not None
        assert list(session.scalars(common.visible_merchants(session, client))) == [mine]


@pytest.mark.parametrize(
    "path", ["/v1/merchants/0", "/v1/products/-1", "/v1/variants/abc", "/v1/products/" + "9" * 40]
)
def test_ids_outside_the_id_range_are_404(http: FlaskClient, api_client: ApiClient, path: str) -> None:
    assert_problem(http.get(path, headers=api_client[1]), 404, "not_found")


# --- representation and stock ------------------------------------------------------------------------------


def test_product_with_variants_prices_and_sellable_stock(rt: Runtime, http: FlaskClient) -> None:
    client_id, auth = make_client(rt, "platform-a")
    merchant_id = add_merchant(rt, client_id, buffer=2)
    product_id, (held, untracked, oversold, uncounted, yen) = add_product(
        rt,
        merchant_id,
        title="Hoodie",
        variants=[
            # 10 on hand, 3 held by active reservations, 1 confirmed but not yet in the store's level (still
            # held, as checkout counts it), released holds no longer count, buffer 2
            {
                "sku": "H-S",
                "price_minor": 4999,
                "compare_at_minor": 5999,
                "stock": 10,
                "held": {"active": 3, "released": 4, "confirmed": 1},
            },
            {"sku": "H-M", "price_minor": 4999, "tracked": False},
            {"sku": "H-L", "price_minor": 4999, "stock": 4, "held": {"active": 5}},  # never below zero
            {"sku": "H-XL", "price_minor": 4999},  # tracked but never counted: nothing to sell
            {"sku": "H-JP", "price_minor": 7500, "currency": "JPY", "stock": 9},
        ],
    )
    body = get_ok(http, f"/v1/products/{product_id}", auth)
    assert body["id"] == product_id and body["merchant_id"] == merchant_id and body["title"] == "Hoodie"
    assert body["media"] == [{"url": "https://cdn.example.com/a.jpg"}]
    variants = {v["id"]: v for v in body["variants"]}
    assert list(variants) == [held, untracked, oversold, uncounted, yen]
    assert variants[held]["price"] == {"amount_minor": 4999, "currency": "USD"}
    assert variants[held]["compare_at_price"] == {"amount_minor": 5999, "currency": "USD"}
    assert variants[untracked]["compare_at_price"] is None
    assert variants[yen]["price"] == {"amount_minor": 7500, "currency": "JPY"}
    assert {vid: v["sellable"] for vid, v in variants.items()} == {
        held: 10 - 3 - 1 - 2,
        untracked: None,
        oversold: 0,
        uncounted: 0,
        yen: 9 - 2,
    }
    assert variants[untracked]["inventory_tracked"] is False
    assert variants[held]["sku"] == "H-S" and variants[held]["product_id"] == product_id

    variant = get_ok(http, f"/v1/variants/{held}", auth)
    assert variant == variants[held]
    listed = get_ok(http, "/v1/products", auth)["data"]
    assert listed == [body]


def test_stock_is_read_at_the_merchants_location(rt: Runtime, http: FlaskClient) -> None:
    client_id, auth = make_client(rt, "platform-a")
    located = add_merchant(rt, client_id, location="warehouse-2")
    summed = add_merchant(rt, client_id)
    _, (located_variant,) = add_product(
        rt, located, variants=[{"levels": {"default": 50, "warehouse-1": 7, "warehouse-2": 3}}]
    )
    _, (summed_variant,) = add_product(rt, summed, variants=[{"levels": {"default": 12, "warehouse-2": 3}}])
    assert get_ok(http, f"/v1/variants/{located_variant}", auth)["sellable"] == 3
    assert get_ok(http, f"/v1/variants/{summed_variant}", auth)["sellable"] == 12


def test_listing_costs_the_same_queries_whatever_the_page_size(rt: Runtime, http: FlaskClient) -> None:
    client_id, auth = make_client(rt, "platform-a")
    seed_catalog(rt, client_id, products=12)
    get_ok(http, "/v1/products", auth, limit=1)  # warm the key cache
    with counting_queries(rt) as small:
        assert len(get_ok(http, "/v1/products", auth, limit=2)["data"]) == 2
    with counting_queries(rt) as large:
        assert len(get_ok(http, "/v1/products", auth, limit=12)["data"]) == 12
    selects = [statement for statement in large if statement.lstrip().upper().startswith("SELECT")]
    assert len(large) == len(small)
    assert len(selects) == 6  # products, their variants, levels, held stock, tags, collections (per page)


# --- filters and pagination ---------------------------------------------------------------------------------


def test_product_filters(rt: Runtime, http: FlaskClient) -> None:
    client_id, auth = make_client(rt, "platform-a")
    first = seed_catalog(rt, client_id, products=4, name="one")
    second = seed_catalog(rt, client_id, products=2, name="two")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    stale_id, _ = add_product(rt, first.merchant_id, updated_at=old)

    def ids(**query: Any) -> list[int]:
        return [p["id"] for p in get_ok(http, "/v1/products", auth, **query)["data"]]

    assert ids(merchant_id=second.merchant_id) == second.product_ids
    assert ids(status="draft") == [first.product_ids[1], first.product_ids[3], second.product_ids[1]]
    assert ids(merchant_id=first.merchant_id, status="active") == [*first.product_ids[::2], stale_id]
    assert ids(sku="one-sku-2") == [first.product_ids[2]]
    assert ids(sku="no-such-sku") == []
    recent = ids(updated_since=(old + timedelta(days=1)).isoformat())
    assert stale_id not in recent and set(recent) == set(first.product_ids + second.product_ids)
    everything = ids()
    assert stale_id in everything
    # an offset is honoured: 2019-12-31T23:00-02:00 is 2020-01-01T01:00Z, after the old product
    assert ids(updated_since="2019-12-31T23:00:00-02:00") == [pid for pid in everything if pid != stale_id]
    assert ids(updated_since="2019-12-31T22:00:00-02:00") == everything  # exactly its instant: included
    assert ids(updated_since="2020-01-01T00:00:00") == everything  # no offset: UTC


def test_pagination_walks_every_product_once(rt: Runtime, http: FlaskClient) -> None:
    client_id, auth = make_client(rt, "platform-a")
    seeded = seed_catalog(rt, client_id, products=7)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = get_ok(http, "/v1/products", auth, **query)
        seen += [p["id"] for p in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == seeded.product_ids and pages == 3

    merchants = [seeded.merchant_id] + [add_merchant(rt, client_id, name=f"m{i}") for i in range(2)]
    first = get_ok(http, "/v1/merchants", auth, limit=2)
    rest = get_ok(http, "/v1/merchants", auth, limit=2, cursor=first["next_cursor"])
    assert [m["id"] for m in first["data"] + rest["data"]] == merchants and rest["next_cursor"] is None


def test_tampered_and_foreign_cursors_are_refused(rt: Runtime, http: FlaskClient) -> None:
    client_id, auth = make_client(rt, "platform-a")
    seed_catalog(rt, client_id, products=3)
    cursor = get_ok(http, "/v1/products", auth, limit=1)["next_cursor"]
    merchant_cursor = common.encode_cursor("merchants", [1])
    forged = base64.urlsafe_b64encode(b'products:["1"]').decode().rstrip("=")
    negative = base64.urlsafe_b64encode(b"products:[-5]").decode().rstrip("=")
    for bad in [cursor[:-2], cursor + "A", "zz", merchant_cursor, forged, negative, "a" * 600, "bad cursor!"]:
        body = assert_problem(
            http.get("/v1/products", headers=auth, query_string={"cursor": bad}), 422, "invalid_request"
        )
        assert body["errors"][0]["field"] == "cursor"
    assert common.decode_cursor("products", common.encode_cursor("products", [9, "x"]), arity=2) == (9, "x")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "sold"}, "status"),
        ({"merchant_id": "-1"}, "merchant_id"),
        ({"merchant_id": str(2**64)}, "merchant_id"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_since": "0001-01-01T00:00:00+01:00"}, "updated_since"),
        ({"sku": "a\x00b"}, "sku"),
        ({"sku": ""}, "sku"),
    ],
)
def test_invalid_query_parameters_are_422_with_field_errors(
    http: FlaskClient, api_client: ApiClient, query: dict[str, str], field: str
) -> None:
    body = assert_problem(
        http.get("/v1/products", headers=api_client[1], query_string=query), 422, "invalid_request"
    )
    assert [error["field"] for error in body["errors"]] == [field]


def test_a_parameter_given_twice_is_refused(http: FlaskClient, api_client: ApiClient) -> None:
    body = assert_problem(
        http.get("/v1/products?limit=2&limit=3", headers=api_client[1]), 422, "invalid_request"
    )
    assert body["errors"][0]["field"] == "limit"


# --- robustness ---------------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=30)
_values = st.one_of(_text, st.integers(-(2**70), 2**70).map(str), st.datetimes().map(datetime.isoformat))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/merchants", "/v1/products"]),
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "merchant_id", "status", "updated_since", "sku", "other"]),
        _values,
        max_size=4,
    ),
    body=st.one_of(st.none(), st.binary(max_size=50)),
)
def test_no_query_or_body_causes_a_5xx(
    http: FlaskClient,
    api_client: ApiClient,
    path: str,
    query: dict[str, str],
    body: bytes | None,
) -> None:
    response = http.get(path, headers=api_client[1], query_string=query, data=body)
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    if response.status_code == 422:
        assert response.mimetype == "application/problem+json"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    resource=st.sampled_from(["merchants", "products", "variants"]),
    tail=st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        _text.filter(lambda t: "/" not in t and "?" not in t and "#" not in t),
    ),
)
def test_no_id_causes_a_5xx(http: FlaskClient, api_client: ApiClient, resource: str, tail: str) -> None:
    response = http.get(f"/v1/{resource}/{tail}", headers=api_client[1])
    assert response.status_code < 500, response.get_data(as_text=True)


# --- shared request conventions -----------------------------------------------------------------------------


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)


@pytest.fixture
def body_app() -> FlaskClient:
    """A bare app with the API conventions and one route that parses a body."""
    app = Flask("bodies")
    problems.init_app(app)
    common.init_app(app)
    bp = Blueprint("bodies", __name__)

    @bp.post("/items")
    def create_item() -> Response:
        return common.json_response(common.parse_body(_Item), 201)

    @bp.post("/items/optional")
    def optional_item() -> Response:
        item = common.parse_body(_Options, optional=True)
        return common.json_response(item)

    app.register_blueprint(bp, url_prefix="/v1")
    return app.test_client()


class _Options(BaseModel):
    note: str = "none"


def test_parse_body_returns_the_model(body_app: FlaskClient) -> None:
    response = body_app.post("/v1/items", json={"name": "tee", "quantity": 2})
    assert response.status_code == 201 and response.get_json() == {"name": "tee", "quantity": 2}
    assert body_app.post("/v1/items/optional").get_json() == {"note": "none"}
    assert body_app.post("/v1/items/optional", json={"note": "x"}).get_json() == {"note": "x"}


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b'{"name": "tee", "quantity": 2}', "text/plain", 415, "unsupported_media_type"),
        (b"name=tee", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"name": ', "application/json", 400, "malformed_json"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
        (b"[" * 100_000, "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 422, "invalid_request"),
        (b"", "application/json", 400, "malformed_json"),
    ],
)
def test_parse_body_problems(
    body_app: FlaskClient, data: bytes, content_type: str, status: int, code: str
) -> None:
    assert_problem(body_app.post("/v1/items", data=data, content_type=content_type), status, code)


def test_parse_body_field_errors(body_app: FlaskClient) -> None:
    body = assert_problem(
        body_app.post("/v1/items", json={"name": "", "quantity": 0, "extra": 1}), 422, "invalid_request"
    )
    assert sorted(error["field"] for error in body["errors"]) == ["extra", "name", "quantity"]
    assert all(error["message"] for error in body["errors"])
