"""Shopify's calculated query cost and the per-shop leaky bucket that throttles GraphQL requests.

Requested cost is computed from the document before execution (scalars and enums 0, objects 1, connections
2 plus `first`/`last` times the cost of one node, mutations 10); actual cost is computed from what was returned.
The bucket is charged the requested cost up front and refunded the difference once the actual cost is known.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
)

MUTATION_COST: Final = 10
CONNECTION_COST: Final = 2
MAX_QUERY_COST: Final = 1000
THROTTLE_DOCS: Final = "https://shopify.dev/api/usage/rate-limits"


def _int_argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            found = variables.get(value.name.value)
            return found if isinstance(found, int) else None
    return None


def _list_argument_size(field: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, ListValueNode):
            return len(value.values)
        if isinstance(value, VariableNode):
            found = variables.get(value.name.value)
            return len(found) if isinstance(found, list) else None
    return None


class CostCalculator:
    """Computes requested and actual costs of one operation of a document."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ):
        self._schema = schema
        self._fragments = fragments
        self._variables = variables

    def operation_cost(
        self, operation: OperationDefinitionNode, data: Any = None, actual: bool = False
    ) -> int:
        if operation.operation == OperationType.MUTATION:
            root = self._schema.mutation_type
            fields = [f for f in self._fields(operation.selection_set, root)]
            return MUTATION_COST * len(fields)
        return self._selection_cost(operation.selection_set, self._schema.query_type, data, actual)

    def _fields(self, selection_set: SelectionSetNode | None, parent: Any) -> list[tuple[FieldNode, Any]]:
        """The fields selected on `parent`, with fragments flattened, each with the type it was selected on."""
        found: list[tuple[FieldNode, Any]] = []
        if selection_set is None:
            return found
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found.append((selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self._schema.get_type(condition.name.value) if condition else parent
                found.extend(self._fields(selection.selection_set, target))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self._fragments.get(selection.name.value)
                if fragment is not None:
                    target = self._schema.get_type(fragment.type_condition.name.value)
                    found.extend(self._fields(fragment.selection_set, target))
        return found

    def _selection_cost(
        self, selection_set: SelectionSetNode | None, parent: Any, data: Any, actual: bool
    ) -> int:
        total = 0
        for field, owner in self._fields(selection_set, parent):
            name = field.name.value
            if name.startswith("__") or not isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
                continue
            definition = owner.fields.get(name)
            if definition is None:
                continue
            named = get_named_type(definition.type)
            if is_leaf_type(named):
                continue
            key = field.alias.value if field.alias else name
            value = data.get(key) if isinstance(data, dict) else None
            if actual and value is None:
                continue
            if named.name.endswith("Connection") and isinstance(named, GraphQLObjectType):
                total += self._connection_cost(field, named, value, actual)
            elif isinstance(value, list) and actual:
                total += sum(
                    1 + self._selection_cost(field.selection_set, named, item, actual) for item in value
                )
            else:
                size = _list_argument_size(field, "ids", self._variables) or 1
                sample = value[0] if isinstance(value, list) and value else value
                total += size * (1 + self._selection_cost(field.selection_set, named, sample, actual))
        return total

    def _connection_cost(
        self, field: FieldNode, connection: GraphQLObjectType, value: Any, actual: bool
    ) -> int:
        node_type = get_named_type(connection.fields["nodes"].type) if "nodes" in connection.fields else None
        node_selections: list[tuple[SelectionSetNode | None, str]] = []
        for child, _ in self._fields(field.selection_set, connection):
            key = child.alias.value if child.alias else child.name.value
            if child.name.value == "nodes":
                node_selections.append((child.selection_set, key))
            elif child.name.value == "edges":
                edge_type = get_named_type(connection.fields["edges"].type)
                for grandchild, _ in self._fields(child.selection_set, edge_type):
                    if grandchild.name.value == "node":
                        node_key = grandchild.alias.value if grandchild.alias else "node"
                        node_selections.append((grandchild.selection_set, f"{key}.{node_key}"))
        if actual:
            items: list[Any] = []
            for _, key in node_selections:
                items = self._items(value, key)
                if items:
                    break
            per_node = 0
            for selection_set, key in node_selections:
                sample = self._items(value, key)
                per_node = max(
                    per_node,
                    1
                    + self._selection_cost(
                        selection_set, node_type, sample[0] if sample else None, actual=False
                    ),
                )
            return CONNECTION_COST + len(items) * per_node if node_selections else CONNECTION_COST
        size = (
            _int_argument(field, "first", self._variables)
            or _int_argument(field, "last", self._variables)
            or 0
        )
        per_node = max(
            (
                1 + self._selection_cost(selection_set, node_type, None, actual=False)
                for selection_set, _ in node_selections
            ),
            default=0,
        )
        return CONNECTION_COST + size * per_node

    @staticmethod
    def _items(value: Any, key: str) -> list[Any]:
        if not isinstance(value, dict):
            return []
        if "." in key:
            edges_key, node_key = key.split(".", 1)
            edges = value.get(edges_key) or []
            return [edge.get(node_key) for edge in edges if isinstance(edge, dict)]
        nodes = value.get(key)
        return nodes if isinstance(nodes, list) else []


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float

    def as_json(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": int(self.currently_available),
            "restoreRate": self.restore_rate,
        }


class LeakyBucket:
    """Shopify's per-app-and-shop cost bucket: it refills at `restore_rate` points a second up to its maximum."""

    def __init__(
        self, maximum_available: float = 2000.0, restore_rate: float = 100.0, *, clock: Callable[[], float]
    ):
        self.maximum_available = maximum_available
        self.restore_rate = restore_rate
        self._clock = clock
        self._available = maximum_available
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._at)
        self._available = min(self.maximum_available, round(self._available + elapsed * self.restore_rate, 3))
        self._at = now

    def take(self, cost: int) -> bool:
        """Charge `cost` up front; False (and nothing charged) when the bucket lacks it."""
        with self._lock:
            self._refill()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self, points: int) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.maximum_available, self._available + max(0, points))

    def configure(self, maximum_available: float | None = None, restore_rate: float | None = None) -> None:
        with self._lock:
            self._refill()
            if maximum_available is not None:
                self.maximum_available = maximum_available
                self._available = min(self._available, maximum_available)
            if restore_rate is not None:
                self.restore_rate = restore_rate

    def drain(self, to: float = 0.0) -> None:
        """Empty the bucket down to `to` points (to exercise throttling)."""
        with self._lock:
            self._refill()
            self._available = max(0.0, min(self._available, to))

    def status(self) -> ThrottleStatus:
        with self._lock:
            self._refill()
            return ThrottleStatus(self.maximum_available, self._available, self.restore_rate)


def cost_extension(requested: int, actual: int | None, status: ThrottleStatus) -> dict[str, Any]:
    """`extensions.cost` as Shopify sends it (`actualQueryCost` is null when nothing ran)."""
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": status.as_json(),
        }
    }
