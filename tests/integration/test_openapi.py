"""The OpenAPI 3.1 document at `/v1/openapi.json`: valid, complete, generated from the routes and models."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask, Response
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from connector.api import common, openapi
from connector.api.openapi import doc


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/v1/openapi.json")  # public: no key
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema or unresolved reference


def test_every_v1_route_is_documented(app: Flask, document: dict[str, Any]) -> None:
    assert openapi.undocumented(app) == []
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    for rule in openapi.api_rules(app):
        path = openapi._path(rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                assert (method, path) in documented, (method, rule.rule)
    for expected in (
        ("GET", "/v1/merchants"),
        ("GET", "/v1/merchants/{merchant_id}"),
        ("GET", "/v1/products"),
        ("GET", "/v1/products/{product_id}"),
        ("GET", "/v1/variants/{variant_id}"),
        ("POST", "/v1/webhook-endpoints"),
        ("GET", "/v1/openapi.json"),
    ):
        assert expected in documented


def test_every_reference_resolves_to_a_component(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    assert "$defs" not in str(document)  # nested definitions were hoisted into components


def test_catalog_operations(document: dict[str, Any]) -> None:
    products = document["paths"]["/v1/products"]["get"]
    names = {parameter["name"]: parameter for parameter in products["parameters"]}
    assert set(names) >= {"limit", "cursor", "merchant_id", "status", "updated_since", "sku"}
    assert all(parameter["in"] == "query" and not parameter["required"] for parameter in names.values())
    assert names["limit"]["schema"]["minimum"] == 1 and names["limit"]["schema"]["maximum"] == 200
    assert names["updated_since"]["schema"] == {"type": "string", "format": "date-time"}
    assert products["security"] == [{"bearerAuth": []}]
    assert products["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProductPage"
    }
    for status in ("401", "422"):
        content = products["responses"][status]["content"]
        assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

    product = document["paths"]["/v1/products/{product_id}"]["get"]
    assert product["parameters"] == [
        {
            "name": "product_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        }
    ]
    assert set(product["responses"]) == {"200", "401", "404"}
    variant = document["components"]["schemas"]["VariantOut"]
    assert variant["properties"]["price"] == {"$ref": "#/components/schemas/Price"}
    assert "sellable" in variant["required"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document["paths"]["/v1/openapi.json"]["get"]["security"] == []


def test_webhook_operations_carry_bodies_and_body_problems(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/webhook-endpoints"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EndpointCreate"
    }
    assert {"201", "400", "401", "415", "422"} <= set(create["responses"])
    assert create["requestBody"]["required"] is True
    rotate = document["paths"]["/v1/webhook-endpoints/{endpoint_id}/rotate-secret"]["post"]
    assert rotate["requestBody"]["required"] is False  # an empty body keeps the default grace period
    delete = document["paths"]["/v1/webhook-endpoints/{endpoint_id}"]["delete"]
    assert delete["responses"]["204"] == {"description": "No Content"}
    assert delete["parameters"][0]["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}


def test_operation_ids_are_unique_camel_case_names(document: dict[str, Any]) -> None:
    ids = [
        operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(ids) == len(set(ids)), sorted(ids)
    for operation_id in ids:
        assert "." not in operation_id and "_" not in operation_id, operation_id
        assert operation_id[0].islower(), operation_id
    paths = document["paths"]
    assert paths["/v1/products"]["get"]["operationId"] == "listProducts"
    assert paths["/v1/products/{product_id}"]["get"]["operationId"] == "getProduct"
    assert paths["/v1/orders"]["post"]["operationId"] == "createOrder"
    assert paths["/v1/orders/{order_id}/cancel"]["post"]["operationId"] == "cancelOrder"
    assert paths["/v1/live-sessions/{session_id}"]["get"]["operationId"] == "getLiveSession"
    assert paths["/v1/live-sessions/{session_id}/pins/{pin_id}"]["delete"]["operationId"] == "deletePin"
    assert paths["/v1/merchants"]["post"]["operationId"] == "connectMerchant"
    assert paths["/v1/merchants/{kind}"]["post"]["operationId"] == "connectMerchantOfKind"
    assert paths["/v1/webhook-endpoints"]["get"]["operationId"] == "listWebhookEndpoints"
    assert paths["/v1/openapi.json"]["get"]["operationId"] == "getOpenApiDocument"


def test_operation_ids_come_from_view_names_or_doc() -> None:
    app = Flask("ids")
    first, second = Blueprint("first", __name__), Blueprint("second", __name__)

    @first.get("/things")
    @doc(summary="List", responses={200: None})
    def list_things() -> Response:
        return Response()

    @first.route("/things/<int:thing_id>", methods=["GET", "PUT"])
    @doc(summary="Get or replace", responses={200: None}, operation_id="thing")
    def thing(thing_id: int) -> Response:
        return Response()

    @second.get("/other-things")
    @doc(summary="List others", responses={200: None})
    def list_things_too() -> Response:
        return Response()

    app.register_blueprint(first, url_prefix="/v1")
    app.register_blueprint(second, url_prefix="/v1")
    paths = openapi.build_document(app)["paths"]
    assert paths["/v1/things"]["get"]["operationId"] == "listThings"
    assert paths["/v1/other-things"]["get"]["operationId"] == "listThingsToo"
    assert paths["/v1/things/{thing_id}"]["get"]["operationId"] == "thingGet"
    assert paths["/v1/things/{thing_id}"]["put"]["operationId"] == "thingPut"
    assert openapi.camel_case("get_open_api_document") == "getOpenApiDocument"


def test_duplicate_operation_ids_are_refused() -> None:
    app = Flask("duplicates")
    first, second = Blueprint("first", __name__), Blueprint("second", __name__)
    for blueprint, path in ((first, "/a"), (second, "/b")):

        @blueprint.get(path)
        @doc(summary="List", responses={200: None})
        def list_items() -> Response:
            return Response()

        app.register_blueprint(blueprint, url_prefix="/v1")
    with pytest.raises(ValueError, match="operationId 'listItems' of GET /v1/b is already used by GET /v1/a"):
        openapi.build_document(app)
    with pytest.raises(ValueError, match="not camelCase"):
        doc(summary="x", responses={200: None}, operation_id="list_items")


def test_document_is_generated_from_decorated_views() -> None:
    """A standalone app: converters, query and body models, hoisted nested models, problem responses."""

    class Inner(BaseModel):
        note: str

    class Body(BaseModel):
        name: str = Field(max_length=10)
        inner: Inner

    class Out(BaseModel):
        id: int

    class Filter(BaseModel):
        q: str | None = Field(default=None, description="Search text.")
        size: int = 5

    bp = Blueprint("sample", __name__)

    @bp.post("/things/<id:thing_id>/parts/<string(length=4):code>")
    @doc(summary="Make a part", tags=["things"], body=Body, query=Filter, responses={201: Out, 409: None})
    def make_part(thing_id: int, code: str) -> Response:
        """Long description."""
        return Response(status=201)

    @bp.get("/open")
    @doc(summary="Open", responses={200: None}, public=True)
    def open_route() -> Response:
        return Response(status=200)

    app = Flask("sample")
    common.init_app(app)
    app.register_blueprint(bp, url_prefix="/v1")
    app.add_url_rule("/other/<int:x>", "other", lambda x: "")  # outside /v1: not in the document

    document = openapi.build_document(app)
    validate(document)
    assert list(document["paths"]) == ["/v1/open", "/v1/things/{thing_id}/parts/{code}"]
    operation = document["paths"]["/v1/things/{thing_id}/parts/{code}"]["post"]
    assert operation["summary"] == "Make a part" and operation["description"] == "Long description."
    assert operation["tags"] == ["things"] and document["tags"] == [{"name": "things"}]
    params = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert params["code"]["schema"] == {
        "type": "string",
        "pattern": "^[^/]+$",
        "minLength": 4,
        "maxLength": 4,
    }
    assert params["q"] == {
        "name": "q",
        "in": "query",
        "required": False,
        "description": "Search text.",
        "schema": {"type": "string"},
    }
    assert params["size"]["schema"] == {"type": "integer", "default": 5}
    schemas = document["components"]["schemas"]
    assert schemas["Body"]["properties"]["inner"] == {"$ref": "#/components/schemas/Inner"}
    assert "Inner" in schemas and "Problem" in schemas and "FieldError" in schemas
    assert set(operation["responses"]) == {"201", "400", "401", "409", "415", "422"}
    assert operation["responses"]["409"]["content"]["application/problem+json"]
    opened = document["paths"]["/v1/open"]["get"]
    assert opened["security"] == [] and set(opened["responses"]) == {"200"}
    assert openapi.undocumented(app) == []


def test_undocumented_routes_are_reported() -> None:
    app = Flask("sample")
    app.add_url_rule("/v1/bare/<int:x>", "bare", lambda x: "", methods=["GET", "POST"])
    assert openapi.undocumented(app) == ["GET /v1/bare/<int:x>", "POST /v1/bare/<int:x>"]
    document = openapi.build_document(app)
    validate(document)  # still a valid document, with path parameters
    assert document["paths"]["/v1/bare/{x}"]["post"]["operationId"] == "bare.post"


def test_doc_refuses_an_empty_response_map() -> None:
    with pytest.raises(ValueError, match="at least one response"):
        doc(summary="x", responses={})
    with pytest.raises(ValueError, match="invalid HTTP status"):
        doc(summary="x", responses={42: None})
