"""A lean executor for bulk queries: walks an already validated query over the store with the same resolvers
as the GraphQL endpoint, without graphql-core's per-field bookkeeping, so a whole catalog exports quickly.
Root connections are read in slices, each under the store lock, so API requests are not held up for long."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    is_leaf_type,
)
from graphql.execution.values import get_argument_values

from connector.sandbox.shopify.api import QUERIES, resolve_value, type_resolver
from connector.sandbox.shopify.store import Context

SLICE: Final = 250


class Walker:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, ctx: Context):
        self.schema = schema
        self.ctx = ctx
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        self._collected: dict[tuple[int, str], list[FieldNode]] = {}

    def roots(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(response key, a slice of root connection nodes, completed) for every root connection."""
        root = self.schema.query_type
        assert root is not None
        for field in self._collect(self.operation.selection_set, root):
            definition = root.fields[field.name.value]
            args = get_argument_values(definition, field)
            key = field.alias.value if field.alias else field.name.value
            with self.ctx.store.lock:
                connection = QUERIES[field.name.value](self.ctx, None, args)  # type: ignore[arg-type]
                nodes = list(_nodes_of(connection))
            node_type, node_selection = self._node_selection(field, definition.type)
            for start in range(0, len(nodes), SLICE):
                with self.ctx.store.lock:
                    done = [
                        self._complete(node, node_type, node_selection)
                        for node in nodes[start : start + SLICE]
                    ]
                yield key, done

    def _node_selection(
        self, field: FieldNode, connection_type: GraphQLOutputType
    ) -> tuple[Any, SelectionSetNode]:
        connection = _unwrap(connection_type)
        assert isinstance(connection, GraphQLObjectType)
        for child in self._collect(field.selection_set, connection):
            if child.name.value == "nodes" and child.selection_set is not None:
                return _unwrap(connection.fields["nodes"].type), child.selection_set
            if child.name.value == "edges":
                edge = _unwrap(connection.fields["edges"].type)
                assert isinstance(edge, GraphQLObjectType)
                for grandchild in self._collect(child.selection_set, edge):
                    if grandchild.name.value == "node" and grandchild.selection_set is not None:
                        return _unwrap(edge.fields["node"].type), grandchild.selection_set
        return None, SelectionSetNode(selections=())

    def _collect(self, selection_set: SelectionSetNode | None, runtime: GraphQLObjectType) -> list[FieldNode]:
        cache_key = (id(selection_set), runtime.name)
        cached = self._collected.get(cache_key)
        if cached is None:
            cached = self._collected[cache_key] = self._collect_uncached(selection_set, runtime)
        return cached

    def _collect_uncached(
        self, selection_set: SelectionSetNode | None, runtime: GraphQLObjectType
    ) -> list[FieldNode]:
        found: list[FieldNode] = []
        if selection_set is None:
            return found
        for selection in selection_set.selections:
            if not _included(selection):
                continue
            if isinstance(selection, FieldNode):
                found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, runtime):
                    found.extend(self._collect(selection.selection_set, runtime))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self._applies(fragment.type_condition.name.value, runtime):
                    found.extend(self._collect(fragment.selection_set, runtime))
        return found

    def _applies(self, condition: str, runtime: GraphQLObjectType) -> bool:
        if condition == runtime.name:
            return True
        wanted = self.schema.get_type(condition)
        return isinstance(wanted, GraphQLInterfaceType | GraphQLUnionType) and self.schema.is_sub_type(
            wanted, runtime
        )

    def _complete(self, value: Any, type_: Any, selection_set: SelectionSetNode | None) -> Any:
        if value is None:
            return None
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            return [self._complete(item, type_.of_type, selection_set) for item in value]
        if is_leaf_type(type_):
            return value if isinstance(value, str) else type_.serialize(value)
        runtime = type_
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            runtime = self.schema.get_type(type_resolver(value, None, type_) or "")  # type: ignore[arg-type]
        if not isinstance(runtime, GraphQLObjectType):
            return None
        out: dict[str, Any] = {}
        for field in self._collect(selection_set, runtime):
            name = field.name.value
            key = field.alias.value if field.alias else name
            if name == "__typename":
                out[key] = runtime.name
                continue
            definition = runtime.fields[name]
            args = get_argument_values(definition, field) if field.arguments else {}
            out[key] = self._complete(
                resolve_value(value, self.ctx, name, args), definition.type, field.selection_set
            )
        return out


def _unwrap(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _nodes_of(connection: Any) -> list[Any]:
    if not isinstance(connection, dict):
        return []
    return list(connection.get("nodes") or [])


def _included(selection: Any) -> bool:
    for directive in selection.directives or ():
        argument = next((a for a in directive.arguments or () if a.name.value == "if"), None)
        literal = argument.value.value if argument and isinstance(argument.value, BooleanValueNode) else True
        if directive.name.value == "skip" and literal:
            return False
        if directive.name.value == "include" and not literal:
            return False
    return True
