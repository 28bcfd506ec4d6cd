"""Shopify's real Admin GraphQL schema (API version 2026-10), loaded from the vendored introspection result,
and validation of documents against it with the error shapes Shopify answers."""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from importlib import resources
from typing import Any, Final

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    Visitor,
    build_client_schema,
    parse,
    validate,
    visit,
)

API_VERSION: Final = "2026-10"
SCHEMA_FILE: Final = f"shopify_admin_{API_VERSION}.json.gz"

_UNDEFINED_FIELD = re.compile(r"^Cannot query field '(?P<field>\w+)' on type '(?P<type>\w+)'\.")
_UNKNOWN_ARGUMENT = re.compile(r"^Unknown argument '(?P<arg>\w+)' on field '(?P<type>\w+)\.(?P<field>\w+)'\.")
_MISSING_ARGUMENT = re.compile(
    r"^Argument '\w+\.(?P<field>\w+)\((?P<arg>\w+):\)' of type '[^']+' is required"
    r"|^Field '(?P<field_old>\w+)' argument '(?P<arg_old>\w+)' of type '[^']+' is required"
)
_UNDEFINED_TYPE = re.compile(r"^Unknown type '(?P<type>\w+)'\.")
_UNDEFINED_VARIABLE = re.compile(r"^Variable '\$(?P<var>\w+)' is not defined")
_UNUSED_VARIABLE = re.compile(r"^Variable '\$(?P<var>\w+)' is never used")


@cache
def load_schema() -> GraphQLSchema:
    """The executable schema built from the vendored introspection result (built once per process)."""
    raw = resources.files("connector.sandbox").joinpath("data", SCHEMA_FILE).read_bytes()
    introspection = json.loads(gzip.decompress(raw))
    return build_client_schema(introspection.get("data") or introspection, assume_valid=True)


def _paths(document: DocumentNode) -> dict[int, list[str]]:
    """graphql-ruby's error path of every node, by the node's start offset: the operation ("query" or
    "query Name", "fragment Name"), then field and argument names."""
    paths: dict[int, list[str]] = {}
    stack: list[str] = []
    pushed_by: set[int] = set()

    class Paths(Visitor):
        def enter(self, node: Node, *_: Any) -> None:
            pushed: str | None = None
            if isinstance(node, OperationDefinitionNode):
                kind = node.operation.value
                pushed = f"{kind} {node.name.value}" if node.name else kind
            elif isinstance(node, FragmentDefinitionNode):
                pushed = f"fragment {node.name.value}"
            elif isinstance(node, FieldNode | ArgumentNode):
                pushed = node.name.value
            elif isinstance(node, InlineFragmentNode):
                pushed = f"... on {node.type_condition.name.value}" if node.type_condition else "..."
            if pushed is not None:
                stack.append(pushed)
                pushed_by.add(id(node))
            if node.loc is not None:
                paths.setdefault(node.loc.start, list(stack))

        def leave(self, node: Node, *_: Any) -> None:
            if id(node) in pushed_by:
                stack.pop()

    visit(document, Paths())
    return paths


def _operation_label(path: list[str]) -> str:
    head = path[0] if path else "query"
    return "anonymous query" if head in ("query", "mutation") else head.split(" ", 1)[-1]


def shopify_error(error: GraphQLError, paths: dict[int, list[str]] | None = None) -> dict[str, Any]:
    """A graphql-core validation or syntax error as Shopify (graphql-ruby) words it."""
    message = error.message.replace('"', "'")
    locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]
    node = error.nodes[0] if error.nodes else None
    path = (paths or {}).get(node.loc.start, []) if node is not None and node.loc is not None else []
    extensions: dict[str, Any]
    if match := _UNDEFINED_FIELD.match(message):
        message = f"Field '{match['field']}' doesn't exist on type '{match['type']}'"
        extensions = {"code": "undefinedField", "typeName": match["type"], "fieldName": match["field"]}
    elif match := _UNKNOWN_ARGUMENT.match(message):
        message = f"Field '{match['field']}' doesn't accept argument '{match['arg']}'"
        extensions = {
            "code": "argumentNotAccepted",
            "name": match["field"],
            "typeName": "Field",
            "argumentName": match["arg"],
        }
    elif match := _MISSING_ARGUMENT.match(message):
        field, argument = match["field"] or match["field_old"], match["arg"] or match["arg_old"]
        message = f"Field '{field}' is missing required arguments: {argument}"
        extensions = {
            "code": "missingRequiredArguments",
            "className": "Field",
            "name": field,
            "arguments": argument,
        }
    elif match := _UNDEFINED_TYPE.match(message):
        message = f"No such type {match['type']}, so it can't be a fragment condition"
        extensions = {"code": "undefinedType", "typeName": match["type"]}
    elif match := _UNDEFINED_VARIABLE.match(message):
        message = f"Variable ${match['var']} is used by {_operation_label(path)} but not declared"
        extensions = {"code": "variableNotDefined", "variableName": match["var"]}
    elif match := _UNUSED_VARIABLE.match(message):
        message = f"Variable ${match['var']} is declared by {_operation_label(path)} but not used"
        extensions = {"code": "variableNotUsed", "variableName": match["var"]}
    elif message.startswith("Syntax Error"):
        line, column = (locations[0]["line"], locations[0]["column"]) if locations else (1, 1)
        message = f"{message.removeprefix('Syntax Error: ').rstrip('.')} at [{line}, {column}]"
        return {"message": message, "locations": locations}
    else:
        extensions = {"code": "validationError"}
    answer: dict[str, Any] = {"message": message, "locations": locations}
    if path:
        answer["path"] = path
    answer["extensions"] = extensions
    return answer


def parse_and_validate(text: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """The parsed document and Shopify-shaped errors (empty when the document is valid)."""
    try:
        document = parse(text)
    except GraphQLError as error:
        return None, [shopify_error(error)]
    errors = validate(load_schema(), document)
    if not errors:
        return document, []
    paths = _paths(document)
    return document, [shopify_error(error, paths) for error in errors]


def validate_document(text: str) -> list[str]:
    """The messages of every error `text` has against the real schema (empty when it is valid)."""
    return [error["message"] for error in parse_and_validate(text)[1]]
