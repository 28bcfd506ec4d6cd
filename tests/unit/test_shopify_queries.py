"""Every GraphQL document the Shopify adapter sends validates against Shopify's Admin API 2026-10 schema."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_client_schema, parse, validate

from adapters.shopify import const, queries

SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "connector" / "sandbox" / "data" / "shopify_admin_2026-10.json.gz"
)


@cache
def schema() -> GraphQLSchema:
    with gzip.open(SCHEMA_PATH, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    return build_client_schema(data.get("data", data), assume_valid=True)


def test_the_schema_is_the_pinned_version():
    assert const.API_VERSION == "2026-10"
    assert SCHEMA_PATH.name == f"shopify_admin_{const.API_VERSION}.json.gz"


def test_every_constant_is_listed():
    assert set(queries.DOCUMENTS) >= {"SHOP", "BULK_CATALOG", "ORDER_CREATE", "INVENTORY_SET"}
    assert "DOCUMENTS" not in queries.DOCUMENTS


@pytest.mark.parametrize("name", sorted(queries.DOCUMENTS))
def test_document_is_valid(name: str):
    errors = validate(schema(), parse(queries.DOCUMENTS[name]))
    assert errors == [], [error.message for error in errors]


def test_idempotent_mutations_carry_the_directive():
    mutation = schema().mutation_type
    assert mutation is not None
    required = {
        field
        for field, definition in mutation.fields.items()
        if "idempotency key is required" in (definition.description or "")
    }
    assert "inventorySetQuantities" in required
    for name, document in queries.DOCUMENTS.items():
        for field in required:
            if f"{field}(" in document:
                assert "@idempotent(key: $idempotencyKey)" in document, name


def test_a_broken_document_is_caught():
    errors = validate(schema(), parse("query { shop { noSuchField } }"))
    assert errors


def test_page_sizes_match_the_documents():
    assert f"variants(first: {const.VARIANTS_PER_PAGE})" in queries.CATALOG_PAGE
    assert f"media(first: {const.MAX_MEDIA})" in queries.CATALOG_PAGE
    assert queries.INVENTORY_ALL_LOCATIONS.count(f"inventoryLevels(first: {const.LEVELS_PER_ITEM})") == 1
    assert queries.INVENTORY_ITEM_TOTALS.count(f"inventoryLevels(first: {const.LEVELS_PER_ITEM})") == 1


def test_an_attributed_order_create_validates_its_variables_against_the_schema():
    """The creator credited with a sale rides on `orderCreate` as a tag and custom attributes whose shape
    the 2026-10 schema accepts (`OrderCreateOrderInput.customAttributes`)."""
    from graphql.execution.values import get_variable_values

    from adapters.shopify import order_mapper
    from connector.domain.money import Money
    from connector.domain.orders import Attribution, Order, OrderLine

    order = Order(
        id="ord_1",
        currency="USD",
        lines=(OrderLine("gid://shopify/ProductVariant/1", 1, Money(1000, "USD")),),
        attribution=Attribution(
            via="click",
            creator_ref="creator-" + "x" * 60,
            program_id=3,
            link_id=4,
            link_code="Ab3_x",
            click_id="clk_1",
        ),
    )
    variables = order_mapper.order_variables(order, "key-1")
    document = parse(queries.ORDER_CREATE)
    operation = document.definitions[0]
    coerced = get_variable_values(schema(), operation.variable_definitions or [], variables)
    assert not isinstance(coerced, list), coerced  # a list is the coercion's errors
    broken = {**variables, "order": {**variables["order"], "customAttributes": [{"key": "k"}]}}
    assert isinstance(get_variable_values(schema(), operation.variable_definitions or [], broken), list)
    data = variables["order"]
    creator_tags = [tag for tag in data["tags"] if tag.startswith(const.CREATOR_TAG_PREFIX)]
    assert creator_tags and all(len(tag) <= const.TAG_MAX_LENGTH for tag in creator_tags)
    attributes = {item["key"]: item["value"] for item in data["customAttributes"]}
    assert attributes == {
        "storelink_creator": order.attribution.creator_ref,
        "storelink_attributed_via": "click",
        "storelink_link_code": "Ab3_x",
        "storelink_click_id": "clk_1",
    }
    plain = order_mapper.order_variables(Order("o", "USD", order.lines), "key-2")["order"]
    assert "customAttributes" not in plain
    assert not any(tag.startswith(const.CREATOR_TAG_PREFIX) for tag in plain["tags"])
