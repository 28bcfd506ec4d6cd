"""Bulk query operations: checks the query as Shopify does (one to five connections, nesting depth two, `id`
on parents of nested connections), runs it over the whole store in a background thread
(CREATED -> RUNNING -> COMPLETED) and writes JSON Lines the 2026-01+ way: one object per line, nested connection
children on their own lines with `__parentId`, not grouped after their parent unless `groupObjects` is true."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
)

from connector.sandbox.shopify import payloads
from connector.sandbox.shopify.models import BulkOperation
from connector.sandbox.shopify.schema import load_schema, parse_and_validate
from connector.sandbox.shopify.store import Context, Store
from connector.sandbox.shopify.walker import Walker

logger = logging.getLogger(__name__)

MAX_CONNECTIONS: Final = 5
MAX_DEPTH: Final = 2
MAX_RUNNING: Final = 5


def _is_connection(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and ("edges" in value or "nodes" in value)
        and set(value)
        <= {
            "edges",
            "nodes",
            "pageInfo",
        }
    )


def _connection_nodes(value: dict[str, Any]) -> list[Any]:
    if "nodes" in value and isinstance(value["nodes"], list):
        return value["nodes"]
    return [
        edge.get("node") for edge in value.get("edges") or [] if isinstance(edge, dict) and "node" in edge
    ]


class _Shape:
    """Counts connections and nesting depth of a bulk query and finds parents lacking `id`."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = load_schema()
        self.fragments = fragments
        self.connections = 0
        self.depth = 0
        self.missing_id: list[str] = []

    def fields(self, selection_set: Any, parent: Any) -> list[FieldNode]:
        found: list[FieldNode] = []
        if selection_set is None:
            return found
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                found.extend(self.fields(selection.selection_set, parent))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    found.extend(self.fields(fragment.selection_set, parent))
        return found

    def walk(self, selection_set: Any, parent: Any, depth: int) -> bool:
        """Visit a selection; True when it holds a connection somewhere below."""
        holds = False
        for field in self.fields(selection_set, parent):
            if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                continue
            definition = parent.fields.get(field.name.value)
            if definition is None:
                continue
            named = get_named_type(definition.type)
            if named.name.endswith("Connection") and isinstance(named, GraphQLObjectType):
                holds = True
                self.connections += 1
                self.depth = max(self.depth, depth + 1)
                node_type = get_named_type(named.fields["nodes"].type) if "nodes" in named.fields else None
                for selection in self._node_selections(field, named):
                    nested = self.walk(selection, node_type, depth + 1)
                    has_id = any(f.name.value == "id" for f in self.fields(selection, node_type))
                    if nested and not has_id:
                        self.missing_id.append(field.name.value)
            elif isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                holds = self.walk(field.selection_set, named, depth) or holds
        return holds

    def _node_selections(self, field: FieldNode, connection: GraphQLObjectType) -> list[Any]:
        selections = []
        for child in self.fields(field.selection_set, connection):
            if child.name.value == "nodes":
                selections.append(child.selection_set)
            elif child.name.value == "edges":
                edge_type = get_named_type(connection.fields["edges"].type)
                selections.extend(
                    g.selection_set
                    for g in self.fields(child.selection_set, edge_type)
                    if g.name.value == "node"
                )
        return selections


def flatten_nodes(
    nodes: list[Any], group_objects: bool, held: list[bytes]
) -> tuple[list[bytes], int, list[bytes]]:
    """JSON Lines of root nodes: (lines, root count, lines still held back). Without `groupObjects` the
    children of each root are written after the next root, as Shopify's ungrouped output allows."""
    lines: list[bytes] = []
    roots = 0

    def split(node: dict[str, Any], parent_id: str | None) -> list[bytes]:
        own: dict[str, Any] = {}
        children: list[Any] = []
        _separate(node, own, children)
        if parent_id is not None:
            own["__parentId"] = parent_id
        out = [orjson.dumps(own)]
        for child in children:
            if isinstance(child, dict):
                out.extend(split(child, node.get("id")))
        return out

    for node in nodes:
        if not isinstance(node, dict):
            continue
        roots += 1
        own, *children = split(node, None)
        lines.append(own)
        if group_objects:
            lines.extend(children)
        else:
            lines.extend(held)
            held = children
    return lines, roots, held


def flatten(data: dict[str, Any], group_objects: bool) -> tuple[list[bytes], int]:
    """JSON Lines of a whole bulk query result, and how many root objects it has."""
    lines: list[bytes] = []
    roots = 0
    held: list[bytes] = []
    for value in data.values():
        if _is_connection(value):
            chunk, count, held = flatten_nodes(_connection_nodes(value), group_objects, held)
            lines.extend(chunk)
            roots += count
    lines.extend(held)
    return lines, roots


def _separate(node: dict[str, Any], own: dict[str, Any], children: list[Any]) -> None:
    """Copy `node` into `own` without its nested connections, whose nodes go to `children`."""
    for key, value in node.items():
        if _is_connection(value):
            children.extend(_connection_nodes(value))
        elif isinstance(value, dict):
            inner: dict[str, Any] = {}
            _separate(value, inner, children)
            own[key] = inner
        else:
            own[key] = value


class BulkRunner:
    """Starts, runs and cancels the store's bulk query operations."""

    def __init__(
        self,
        store: Store,
        *,
        base_url: Callable[[], str],
        step_delay: float = 0.05,
        on_finish: Callable[[BulkOperation], None] | None = None,
    ):
        self.store = store
        self.base_url = base_url
        self.step_delay = step_delay
        self.on_finish = on_finish
        self.fail_next: str | None = None
        self.edit_export: Callable[[list[bytes]], list[bytes]] | None = None
        """Rewrites the JSON Lines of the next exports (tests: lines of other types, unusable records)."""

    def start(
        self, query: str, group_objects: bool = False
    ) -> tuple[BulkOperation | None, list[dict[str, Any]]]:
        document, errors = parse_and_validate(query)
        if errors or document is None:
            return None, [
                {
                    "field": ["query"],
                    "message": f"Invalid bulk query: {errors[0]['message']}",
                    "code": "INVALID",
                }
            ]
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            return None, [
                {
                    "field": ["query"],
                    "message": "Bulk queries must be a single query operation.",
                    "code": "INVALID",
                }
            ]
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        shape = _Shape(fragments)
        shape.walk(operations[0].selection_set, load_schema().query_type, 0)
        problem = None
        if shape.connections == 0:
            problem = "Bulk queries must contain at least one connection."
        elif shape.connections > MAX_CONNECTIONS:
            problem = f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."
        elif shape.depth > MAX_DEPTH:
            problem = (
                f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_DEPTH}."
            )
        elif shape.missing_id:
            problem = (
                "The parent 'node' field for a nested connection must select the 'id' field. "
                f"Connection fields without 'id': {', '.join(shape.missing_id)}."
            )
        if problem:
            return None, [{"field": ["query"], "message": problem, "code": "INVALID"}]
        with self.store.lock:
            running = [
                op
                for op in self.store.bulk_operations.values()
                if op.type == "QUERY" and op.status in ("CREATED", "RUNNING")
            ]
            if len(running) >= MAX_RUNNING:
                return None, [
                    {
                        "field": None,
                        "code": "LIMIT_REACHED",
                        "message": f"A maximum of {MAX_RUNNING} bulk queries can run at the same time.",
                    }
                ]
            operation = BulkOperation(
                self.store.next_id("BulkOperation"), query, self.store.now(), group_objects=group_objects
            )
            self.store.bulk_operations[operation.legacy_resource_id] = operation
        thread = threading.Thread(
            target=self._run, args=(operation, document), name="shopify-bulk", daemon=True
        )
        thread.start()
        return operation, []

    def cancel(self, operation: BulkOperation) -> list[dict[str, Any]]:
        with self.store.lock:
            if operation.status not in ("CREATED", "RUNNING"):
                return [
                    {
                        "field": ["id"],
                        "code": None,
                        "message": f"A bulk operation cannot be canceled when it is {operation.status.lower()}",
                    }
                ]
            operation.status = "CANCELING"
        return []

    def _run(self, operation: BulkOperation, document: Any) -> None:
        time.sleep(self.step_delay)
        with self.store.lock:
            if operation.status == "CANCELING":
                self._finish(operation, "CANCELED")
                return
            operation.status = "RUNNING"
        time.sleep(self.step_delay)
        try:
            if self.fail_next:
                raise RuntimeError(self.fail_next)
            walker = Walker(load_schema(), document, Context(self.store, bulk=True))
            lines: list[bytes] = []
            roots = 0
            held: list[bytes] = []
            for _, nodes in walker.roots():
                if operation.status == "CANCELING":
                    break
                chunk, count, held = flatten_nodes(nodes, operation.group_objects, held)
                lines.extend(chunk)
                roots += count
            lines.extend(held)
            if self.edit_export is not None:
                lines = self.edit_export(lines)
        except Exception:
            logger.exception("bulk operation failed", extra={"bulk_operation": operation.id})
            with self.store.lock:
                self.fail_next = None
                operation.error_code = "INTERNAL_SERVER_ERROR"
                self._finish(operation, "FAILED")
            return
        body = b"".join(line + b"\n" for line in lines)
        with self.store.lock:
            if operation.status == "CANCELING":
                self._finish(operation, "CANCELED")
                return
            operation.body = body
            operation.object_count = len(lines)
            operation.root_object_count = roots
            operation.file_size = len(body) if lines else None
            operation.url = f"{self.base_url()}/bulk/{operation.legacy_resource_id}.jsonl" if lines else None
            self._finish(operation, "COMPLETED")

    def _finish(self, operation: BulkOperation, status: str) -> None:
        operation.status = status
        operation.completed_at = self.store.now()
        self.store._emit("bulk_operations/finish", payloads.bulk_operation(operation))
        if self.on_finish is not None:
            self.on_finish(operation)
