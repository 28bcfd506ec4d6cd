"""The OpenAPI 3.1 document of the Platform API, generated from the routes and the pydantic models they declare.

A view states what it takes and returns with `@doc(...)`, placed below `@bp.get`/`@bp.route`:

    @bp.get("/products/<id:product_id>")
    @doc(summary="Get a product", tags=["catalog"], responses={200: ProductOut, 404: None})
    def get_product(product_id: int) -> Response: ...

`build_document(app)` walks `app.url_map` for every rule under `/v1` (and every documented rule outside it), turns Flask converters into typed path
parameters, query models into query parameters, body and response models into `$ref`s to
`components/schemas`, and 4xx/5xx responses into RFC 9457 problem documents (`application/problem+json`).
Each operation's `operationId` is the view function's name in camelCase (`list_products` -> `listProducts`),
or the `operation_id=` given to `@doc` where the name alone is ambiguous; ids are unique across the document.
`GET /v1/openapi.json` serves the document; it is built once per app and cached.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import metadata
from typing import Any, Literal, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule
from werkzeug.routing.converters import (
    AnyConverter,
    BaseConverter,
    FloatConverter,
    IntegerConverter,
    PathConverter,
    UnicodeConverter,
    UUIDConverter,
)

logger = logging.getLogger(__name__)

PREFIX = "/v1"
OPENAPI_VERSION = "3.1.0"
TITLE = "Storelink Platform API"
PROBLEM_MEDIA_TYPE = "application/problem+json"
SECURITY_SCHEME = "bearerAuth"
MAX_ID = 2**63 - 1  # ids are 64-bit integers
_ATTRIBUTE = "__storelink_openapi__"
_CACHE_KEY = "storelink.openapi"
_REF_TEMPLATE = "#/components/schemas/{model}"
_RULE_ARGUMENT = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_OPERATION_ID = re.compile(r"[a-z][a-zA-Z0-9]*")

ViewT = TypeVar("ViewT", bound=Callable[..., Any])

# --- problem documents ---------------------------------------------------------------------------------


class FieldError(BaseModel):
    """One reason a request was refused: the field (dotted path, empty for the whole body) and why."""

    model_config = ConfigDict(title="FieldError")

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document. `code` is stable and machine-readable; `type` is derived from it."""

    model_config = ConfigDict(title="Problem", extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


_STANDARD_PROBLEMS: dict[int, str] = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    410: "Gone",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    502: "Store error",
    503: "Temporarily unavailable",
}

# --- the decorator ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """What `@doc` records on a view function."""

    summary: str
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    responses: Mapping[int, type[BaseModel] | None] = field(default_factory=dict)
    description: str | None = None
    public: bool = False
    body_optional: bool = False
    codes: Mapping[int, Sequence[str]] = field(default_factory=dict)
    operation_id: str | None = None
    media_types: Mapping[int, str] = field(default_factory=dict)


def doc(
    *,
    summary: str,
    tags: Sequence[str] = (),
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel] | None],
    headers: type[BaseModel] | None = None,
    description: str | None = None,
    public: bool = False,
    body_optional: bool = False,
    codes: Mapping[int, Sequence[str]] | None = None,
    operation_id: str | None = None,
    media_types: Mapping[int, str] | None = None,
) -> Callable[[ViewT], ViewT]:
    """Attach OpenAPI metadata to a view; put it below the route decorator.

    `responses` maps status codes to the response model, or None for no body (2xx/3xx) or the standard
    problem document (4xx/5xx). `headers` is a model whose fields (by alias) are request headers. A `public`
    operation needs no API key; `body_optional` states that an empty body is accepted. The description defaults to
    the view's docstring. `codes` names the problem codes an error status may carry (listed in its description).
    `operation_id` (camelCase) replaces the id derived from the view's name. `media_types` names the media type
    of a success response that is not JSON (e.g. `{200: "text/csv"}`, its model None): a text body.
    """
    if not responses:
        raise ValueError("doc() needs at least one response")
    if operation_id is not None and not _OPERATION_ID.fullmatch(operation_id):
        raise ValueError(
            f"operation_id {operation_id!r} is not camelCase (letters and digits, lower-case first)"
        )
    for status in responses:
        if not 100 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status}")

    def decorate(view: ViewT) -> ViewT:
        setattr(
            view,
            _ATTRIBUTE,
            Operation(
                summary=summary,
                tags=tuple(tags),
                body=body,
                query=query,
                headers=headers,
                responses=dict(responses),
                description=description,
                public=public,
                body_optional=body_optional,
                codes={status: tuple(names) for status, names in (codes or {}).items()},
                operation_id=operation_id,
                media_types=dict(media_types or {}),
            ),
        )
        return view

    return decorate


def operation_of(view: Callable[..., Any] | None) -> Operation | None:
    """The metadata `@doc` attached to `view`, if any."""
    found = getattr(view, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


def api_rules(app: Flask) -> list[Rule]:
    """Every rule under `/v1`, and every documented rule outside it (the public link redirect `/l/{code}`),
    in a stable order."""
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule == PREFIX
        or rule.rule.startswith(PREFIX + "/")
        or operation_of(app.view_functions.get(rule.endpoint)) is not None
    ]
    return sorted(rules, key=lambda rule: (rule.rule, rule.endpoint))


def undocumented(app: Flask) -> list[str]:
    """`METHOD path` of every `/v1` route whose view has no `@doc` (the document must cover them all)."""
    missing: list[str] = []
    for rule in api_rules(app):
        if operation_of(app.view_functions.get(rule.endpoint)) is None:
            missing.extend(f"{method} {rule.rule}" for method in _methods(rule))
    return missing


# --- the generator ---------------------------------------------------------------------------------------


def _methods(rule: Rule) -> list[str]:
    return sorted(set(rule.methods or ()) - _IGNORED_METHODS)


def camel_case(name: str) -> str:
    """`name` (snake_case) in camelCase: `list_products` -> `listProducts`."""
    head, *rest = [part for part in name.split("_") if part]
    return head[:1].lower() + head[1:] + "".join(part[:1].upper() + part[1:] for part in rest)


def _operation_id(
    rule: Rule, method: str, operation: Operation | None, view: Callable[..., Any] | None
) -> str:
    """The operation's id: `@doc(operation_id=...)`, else the view's name in camelCase (with the method
    appended when the view serves several); an undocumented route keeps its endpoint name."""
    methods = _methods(rule)
    if operation is None or view is None:
        return rule.endpoint if len(methods) == 1 else f"{rule.endpoint}.{method.lower()}"
    base = operation.operation_id or camel_case(view.__name__)
    return base if len(methods) == 1 else base + method.capitalize()


def _path(rule: Rule) -> str:
    return _RULE_ARGUMENT.sub(lambda match: "{" + match.group(1) + "}", rule.rule)


def _converter_schema(converter: BaseConverter | None) -> dict[str, Any]:
    if isinstance(converter, IntegerConverter):
        signed = bool(getattr(converter, "signed", False))
        low = getattr(converter, "min", None)
        high = getattr(converter, "max", None)
        schema: dict[str, Any] = {"type": "integer"}
        schema["minimum"] = low if low is not None else (-MAX_ID - 1 if signed else 0)
        schema["maximum"] = high if high is not None else MAX_ID
        return schema
    if isinstance(converter, FloatConverter):
        return {"type": "number"} if getattr(converter, "signed", False) else {"type": "number", "minimum": 0}
    if isinstance(converter, UUIDConverter):
        return {"type": "string", "format": "uuid"}
    if isinstance(converter, AnyConverter):
        return {"type": "string", "enum": sorted(converter.items)}
    if isinstance(converter, PathConverter):
        return {"type": "string", "minLength": 1}
    if isinstance(converter, UnicodeConverter):
        schema = {"type": "string", "pattern": "^[^/]+$"}
        length = converter.regex.partition("{")[2].rstrip("}")
        if length.isdigit():
            schema["minLength"] = schema["maxLength"] = int(length)
        elif "," in length:
            low_text, _, high_text = length.partition(",")
            if low_text.isdigit():
                schema["minLength"] = int(low_text)
            if high_text.isdigit():
                schema["maxLength"] = int(high_text)
        schema.setdefault("minLength", 1)
        return schema
    return {"type": "string"}


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    converters: Mapping[str, BaseConverter] = getattr(rule, "_converters", {})
    return [
        {"name": name, "in": "path", "required": True, "schema": _converter_schema(converters.get(name))}
        for name in _RULE_ARGUMENT.findall(rule.rule)
    ]


def _field_parameters(
    model_schema: Mapping[str, Any], location: Literal["query", "header"]
) -> list[dict[str, Any]]:
    properties: Mapping[str, Any] = model_schema.get("properties", {})
    required = set(model_schema.get("required", ()))
    parameters = []
    for name, schema in properties.items():
        schema = _without_null(schema)
        parameter: dict[str, Any] = {"name": name, "in": location, "required": name in required}
        description = schema.pop("description", None)
        schema.pop("title", None)
        if description:
            parameter["description"] = description
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def _without_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter's schema without its `null` alternative: an absent parameter is how text says "none"."""
    result = dict(schema)
    options = result.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        kept = [option for option in options if option != {"type": "null"}]
        del result["anyOf"]
        if len(kept) == 1:
            result = {**kept[0], **result}
        else:
            result["anyOf"] = kept
        if result.get("default", ...) is None:
            del result["default"]
    return result


def _problem_response(
    status: int,
    model: type[BaseModel] | None,
    refs: Mapping[tuple[type[BaseModel], str], str],
    codes: Sequence[str] = (),
) -> dict[str, Any]:
    schema_ref = refs[(model or Problem, "serialization")]
    description = _STANDARD_PROBLEMS.get(status, "Problem")
    if codes:
        description += "; `code`: " + ", ".join(f"`{code}`" for code in codes)
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": schema_ref}}},
    }
    if status in (429, 503):
        answer["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        }
    return answer


def _operation(
    rule: Rule,
    method: str,
    operation: Operation | None,
    view: Callable[..., Any] | None,
    refs: Mapping[tuple[type[BaseModel], str], str],
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    operation_id = _operation_id(rule, method, operation, view)
    if operation is None:
        logger.warning("undocumented API route", extra={"rule": rule.rule, "method": method})
        undocumented_operation: dict[str, Any] = {"operationId": operation_id, "summary": rule.endpoint}
        if path_parameters := _path_parameters(rule):
            undocumented_operation["parameters"] = path_parameters
        undocumented_operation["responses"] = {"default": {"description": "Undocumented response"}}
        return undocumented_operation
    body: dict[str, Any] = {"operationId": operation_id, "summary": operation.summary}
    description = operation.description or _docstring(view)
    if description:
        body["description"] = description
    if operation.tags:
        body["tags"] = list(operation.tags)
    parameters = _path_parameters(rule)
    if operation.query is not None:
        parameters += _field_parameters(_resolve(refs[(operation.query, "validation")], schemas), "query")
    if operation.headers is not None:
        parameters += _field_parameters(_resolve(refs[(operation.headers, "validation")], schemas), "header")
    if parameters:
        body["parameters"] = parameters
    if operation.body is not None:
        body["requestBody"] = {
            "required": not operation.body_optional,
            "content": {"application/json": {"schema": {"$ref": refs[(operation.body, "validation")]}}},
        }
    responses: dict[str, Any] = {}
    implied: dict[int, type[BaseModel] | None] = {}
    if not operation.public:
        implied[401] = None
    if operation.query is not None or operation.headers is not None:
        implied[422] = None
    if operation.body is not None:
        implied.update({400: None, 415: None, 422: None})
    for status, model in sorted({**implied, **operation.responses}.items()):
        if status >= 400:
            responses[str(status)] = _problem_response(status, model, refs, operation.codes.get(status, ()))
        elif status in operation.media_types:
            responses[str(status)] = {
                "description": _status_description(status),
                "content": {operation.media_types[status]: {"schema": {"type": "string"}}},
            }
        elif model is None:
            responses[str(status)] = {"description": _status_description(status)}
            if 300 <= status < 400:
                responses[str(status)]["headers"] = {
                    "Location": {"description": "Where to go.", "schema": {"type": "string"}}
                }
        else:
            responses[str(status)] = {
                "description": _status_description(status),
                "content": {"application/json": {"schema": {"$ref": refs[(model, "serialization")]}}},
            }
    body["responses"] = responses
    body["security"] = [] if operation.public else [{SECURITY_SCHEME: []}]
    return body


def _docstring(view: Callable[..., Any] | None) -> str | None:
    text = getattr(view, "__doc__", None)
    return text.strip() if isinstance(text, str) and text.strip() else None


def _status_description(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Response"


def _resolve(ref: str, schemas: Mapping[str, Any]) -> Mapping[str, Any]:
    found: Mapping[str, Any] = schemas[ref.rsplit("/", 1)[-1]]
    return found


def _models(app: Flask) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for rule in api_rules(app):
        operation = operation_of(app.view_functions.get(rule.endpoint))
        if operation is None:
            continue
        for model in (operation.body, operation.query, operation.headers):
            if model is not None:
                wanted[(model, "validation")] = None
        for model in operation.responses.values():
            if model is not None:
                wanted[(model, "serialization")] = None
    return list(wanted)


def _version() -> str:
    try:
        return metadata.version("storelink")
    except metadata.PackageNotFoundError:
        return "0"


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every `/v1` route of `app`."""
    models = _models(app)
    ref_map, definitions = models_json_schema(models, ref_template=_REF_TEMPLATE)
    refs: dict[tuple[type[BaseModel], str], str] = {
        (key[0], key[1]): value["$ref"]
        for key, value in ref_map.items()
        if isinstance(key[0], type) and issubclass(key[0], BaseModel)
    }
    schemas: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    seen: dict[str, str] = {}
    for rule in api_rules(app):
        view = app.view_functions.get(rule.endpoint)
        operation = operation_of(view)
        item = paths.setdefault(_path(rule), {})
        for method in _methods(rule):
            body = item[method.lower()] = _operation(rule, method, operation, view, refs, schemas)
            where = f"{method} {rule.rule}"
            if (first := seen.setdefault(body["operationId"], where)) != where:
                raise ValueError(
                    f"operationId {body['operationId']!r} of {where} is already used by {first}; "
                    "give one of them @doc(operation_id=...)"
                )
        if operation is not None:
            tags.update(dict.fromkeys(operation.tags))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": _version(),
            "description": (
                "The Platform API. Authenticate with `Authorization: Bearer <key>`; a client sees only its own "
                "merchants' data. Errors are RFC 9457 problem documents with a stable `code`. Amounts are "
                "integer minor units of the stated ISO 4217 currency."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A platform client API key (`sl_live_...`), created with `storelink clients add`.",
                }
            },
        },
        "security": [{SECURITY_SCHEME: []}],
        "tags": [{"name": name} for name in sorted(tags)],
    }


# --- serving it ------------------------------------------------------------------------------------------


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(title="OpenAPIDocument", extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
@doc(
    summary="The OpenAPI document of this API",
    tags=["meta"],
    responses={200: OpenAPIDocument},
    public=True,
    operation_id="getOpenApiDocument",
)
def openapi_json() -> Response:
    """This document: every operation, its parameters, bodies, responses and problem codes."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    document = app.extensions.get(_CACHE_KEY)
    if document is None:
        document = build_document(app)
        app.extensions[_CACHE_KEY] = document
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
