"""The GraphQL endpoint: validates against the real schema, prices the query, charges the leaky bucket, executes
root fields from a dispatch table over the store, and answers in Shopify's shapes (errors, `extensions.cost`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    get_operation_ast,
    print_ast,
    value_from_ast,
)
from graphql.execution.values import get_variable_values

from connector.sandbox.shopify.cost import (
    MAX_QUERY_COST,
    THROTTLE_DOCS,
    CostCalculator,
    LeakyBucket,
    cost_extension,
)
from connector.sandbox.shopify.models import (
    BulkOperation,
    iso,
    paginate,
    parse_gid,
)
from connector.sandbox.shopify.schema import load_schema, parse_and_validate
from connector.sandbox.shopify.store import (
    ITEM_FILTERS,
    LOCATION_FILTERS,
    ORDER_FILTERS,
    PRODUCT_FILTERS,
    VARIANT_FILTERS,
    Context,
    Store,
    search,
)

if TYPE_CHECKING:
    from connector.sandbox.shopify.bulk import BulkRunner

ROOTS: Final = frozenset({"QueryRoot", "Mutation"})
_VARIABLE = re.compile(r"\$(\w+)")

RootResolver = Callable[[Context, GraphQLResolveInfo, dict[str, Any]], Any]


@cache
def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@cache
def _method_name(name: str) -> str:
    return f"gql_{snake(name)}"


def field_resolver(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Root fields come from the dispatch table; other fields from `gql_<name>` methods, dict keys (callables
    are called) or snake_case attributes. Dates become DateTime text, decimals Decimal text."""
    ctx: Context = info.context
    name = info.field_name
    if info.parent_type.name in ROOTS:
        resolver = (QUERIES if info.parent_type.name == "QueryRoot" else MUTATIONS).get(name)
        if resolver is None:
            raise GraphQLError(f"The Shopify emulator does not implement '{name}'.")
        return plain(resolver(ctx, info, args))
    return resolve_value(source, ctx, name, args)


def resolve_value(source: Any, ctx: Context, name: str, args: dict[str, Any]) -> Any:
    """A non-root field of `source`."""
    method = getattr(source, _method_name(name), None)
    if method is not None:
        value = method(ctx, **args)
    elif isinstance(source, dict):
        value = source.get(name)
        if callable(value):
            value = value(ctx, **args)
    else:
        value = getattr(source, snake(name), None)
    return plain(value)


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def type_resolver(value: Any, info: GraphQLResolveInfo, abstract_type: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("__typename")
        return found if isinstance(found, str) else None
    return getattr(value, "typename", None) or None


# --- queries -------------------------------------------------------------------------------------------------


def _filtered(items: list[Any], query: str | None, fields: dict[str, Callable[[Any], Any]]) -> list[Any]:
    if not query:
        return items
    keep = search(query, fields)
    return [item for item in items if keep(item)]


def _page_args(args: dict[str, Any]) -> dict[str, Any]:
    return {name: args[name] for name in ("first", "after", "last", "before", "reverse") if name in args}


def _sorted(items: list[Any], sort_key: str | None) -> tuple[list[Any], Callable[[Any], int]]:
    """Items in Shopify's sort order, with the integer key their cursors carry."""
    if sort_key in ("UPDATED_AT", "CREATED_AT", "PROCESSED_AT"):
        name = {"UPDATED_AT": "updated_at", "CREATED_AT": "created_at", "PROCESSED_AT": "processed_at"}[
            sort_key
        ]

        def key(item: Any) -> int:
            moment: datetime = getattr(item, name)
            return int(moment.timestamp() * 1_000_000) * 10**20 + item.legacy_resource_id

        return sorted(items, key=key), key
    return items, lambda item: item.legacy_resource_id


def _products(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    items = _filtered(list(ctx.store.products.values()), args.get("query"), PRODUCT_FILTERS)
    ordered, key = _sorted(items, args.get("sortKey"))
    return paginate(ordered, ctx, key=key, **_page_args(args))


def _product_variants(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    items = _filtered(list(ctx.store.variants.values()), args.get("query"), VARIANT_FILTERS)
    return paginate(items, ctx, **_page_args(args))


def _inventory_items(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    items = _filtered(list(ctx.store.inventory_items.values()), args.get("query"), ITEM_FILTERS)
    return paginate(items, ctx, **_page_args(args))


def _locations(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    items = [loc for loc in ctx.store.locations.values() if loc.is_active or args.get("includeInactive")]
    return paginate(_filtered(items, args.get("query"), LOCATION_FILTERS), ctx, **_page_args(args))


def _orders(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    items = _filtered(list(ctx.store.orders.values()), args.get("query"), ORDER_FILTERS)
    ordered, key = _sorted(items, args.get("sortKey"))
    return paginate(ordered, ctx, key=key, **_page_args(args))


def _webhook_subscriptions(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    items = list(ctx.store.subscriptions.values())
    if args.get("topics"):
        items = [item for item in items if item.topic in args["topics"]]
    uri = args.get("uri") or args.get("callbackUrl")
    if uri:
        items = [item for item in items if item.uri == uri]
    return paginate(items, ctx, **_page_args(args))


def _collections(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    filters: dict[str, Callable[[Any], Any]] = {
        "title": lambda c: c.title,
        "handle": lambda c: c.handle,
        "updated_at": lambda c: c.updated_at,
        "id": lambda c: c.legacy_resource_id,
    }
    items = _filtered(list(ctx.store.collections.values()), args.get("query"), filters)
    return paginate(items, ctx, **_page_args(args))


def _collection_by_handle(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return next((c for c in ctx.store.collections.values() if c.handle == args["handle"]), None)


def _by_id(kind: str, table: Callable[[Store], dict[int, Any]]) -> RootResolver:
    def resolve(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
        number = parse_gid(args["id"], kind)
        return table(ctx.store).get(number) if number is not None else None

    return resolve


def _current_bulk_operation(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    wanted = args.get("type") or "QUERY"
    found = [op for op in ctx.store.bulk_operations.values() if op.type == wanted]
    return found[-1] if found else None


def _bulk_operations(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    filters: dict[str, Callable[[Any], Any]] = {
        "status": lambda op: op.status,
        "operation_type": lambda op: op.type,
        "created_at": lambda op: op.created_at,
        "id": lambda op: op.legacy_resource_id,
    }
    items = _filtered(list(ctx.store.bulk_operations.values()), args.get("query"), filters)
    return paginate(items, ctx, **_page_args(args))


def _node(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return ctx.store.find_node(args["id"])


def _nodes(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return [ctx.store.find_node(value) for value in args["ids"]]


def _job(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    ctx.store.run_jobs()
    return ctx.store.jobs.get(args["id"])


QUERIES: Final[dict[str, RootResolver]] = {
    "shop": lambda ctx, info, args: ctx.store.shop,
    "products": _products,
    "product": _by_id("Product", lambda store: store.products),
    "productVariants": _product_variants,
    "collections": _collections,
    "collection": _by_id("Collection", lambda store: store.collections),
    "collectionByHandle": _collection_by_handle,
    "productVariant": _by_id("ProductVariant", lambda store: store.variants),
    "inventoryItems": _inventory_items,
    "inventoryItem": _by_id("InventoryItem", lambda store: store.inventory_items),
    "inventoryLevel": _node,
    "locations": _locations,
    "location": _by_id("Location", lambda store: store.locations),
    "orders": _orders,
    "order": _by_id("Order", lambda store: store.orders),
    "webhookSubscriptions": _webhook_subscriptions,
    "webhookSubscription": _by_id("WebhookSubscription", lambda store: store.subscriptions),
    "currentBulkOperation": _current_bulk_operation,
    "bulkOperation": _by_id("BulkOperation", lambda store: store.bulk_operations),
    "bulkOperations": _bulk_operations,
    "node": _node,
    "nodes": _nodes,
    "job": _job,
}


# --- mutations -----------------------------------------------------------------------------------------------


def plain_variables(values: Any) -> dict[str, Any]:
    """Coerced variables as a dict (graphql-core 3.3 wraps them in a `VariableValues` with `.coerced`)."""
    coerced = getattr(values, "coerced", values)
    return dict(coerced) if isinstance(coerced, dict) else {}


def idempotency_key(info: GraphQLResolveInfo) -> str | None:
    """The `@idempotent(key:)` given on this mutation field, or None."""
    for directive in info.field_nodes[0].directives or ():
        if directive.name.value != "idempotent":
            continue
        for argument in directive.arguments or ():
            if argument.name.value == "key":
                value = value_from_ast(argument.value, GraphQLString, plain_variables(info.variable_values))
                return value if isinstance(value, str) else None
    return None


def _required_key(info: GraphQLResolveInfo) -> str:
    """The mutation's idempotency key; since 2026-04 the inventory mutations refuse to run without one."""
    key = idempotency_key(info)
    if key is None:
        raise GraphQLError(
            "The @idempotent directive is required for this mutation.",
            extensions={"code": "BAD_REQUEST"},
        )
    if not key.strip():
        raise GraphQLError(
            "The idempotency key cannot be an empty string or whitespace only.",
            extensions={"code": "BAD_REQUEST"},
        )
    return key


def _inventory_set_quantities(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return ctx.store.set_quantities(args["input"], _required_key(info))


def _inventory_adjust_quantities(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return ctx.store.adjust_quantities(args["input"], _required_key(info))


def _order_create(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return ctx.store.create_order(args["order"], args.get("options"))


def _order_cancel(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    number = parse_gid(args["orderId"], "Order")
    refund = bool(args.get("refund")) or bool(
        (args.get("refundMethod") or {}).get("originalPaymentMethodsRefund")
    )
    job, failures = ctx.store.cancel_order(
        number if number is not None else -1,
        reason=args["reason"],
        restock=args["restock"],
        refund=refund,
        staff_note=args.get("staffNote"),
    )
    errors = [failure.as_json() for failure in failures]
    result = None
    if job is not None:
        result = {
            "__typename": "OrderCancelJobResult",
            "id": job.id,
            "done": lambda ctx, **_: job.done,
            "status": lambda ctx, **_: job.status,
            "errors": [],
            "order": job.order,
        }
    return {"job": job, "jobResult": result, "orderCancelUserErrors": errors, "userErrors": errors}


def _webhook_subscription_create(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    spec = args["webhookSubscription"]
    uri = spec.get("uri") or spec.get("callbackUrl")
    if not uri:
        return {
            "webhookSubscription": None,
            "userErrors": [{"field": ["webhookSubscription", "uri"], "message": "Address can't be blank"}],
        }
    if not re.match(r"^(https?://|pubsub://|arn:aws:events:)", uri):
        return {
            "webhookSubscription": None,
            "userErrors": [{"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}],
        }
    for existing in ctx.store.subscriptions.values():
        if existing.topic == args["topic"] and existing.uri == uri:
            return {
                "webhookSubscription": None,
                "userErrors": [
                    {
                        "field": ["webhookSubscription", "callbackUrl"],
                        "message": "Address for this topic has already been taken",
                    }
                ],
            }
    subscription = ctx.store.add_subscription(
        args["topic"],
        uri,
        filter=spec.get("filter"),
        format=spec.get("format") or "JSON",
        include_fields=list(spec.get("includeFields") or []),
        metafield_namespaces=list(spec.get("metafieldNamespaces") or []),
        name=spec.get("name"),
    )
    return {"webhookSubscription": subscription, "userErrors": []}


def _webhook_subscription_delete(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    removed = None
    if parse_gid(args["id"], "WebhookSubscription") is not None:
        removed = ctx.store.remove_subscription(args["id"])
    if removed is None:
        return {
            "deletedWebhookSubscriptionId": None,
            "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
        }
    return {"deletedWebhookSubscriptionId": removed.id, "userErrors": []}


def _bulk_operation_run_query(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    runner: BulkRunner = ctx.extra["bulk"]
    operation, errors = runner.start(args["query"], bool(args.get("groupObjects")))
    return {"bulkOperation": operation, "userErrors": errors}


def _bulk_operation_cancel(ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    runner: BulkRunner = ctx.extra["bulk"]
    operation: BulkOperation | None = ctx.store.bulk_operations.get(
        parse_gid(args["id"], "BulkOperation") or -1
    )
    if operation is None:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
        }
    return {"bulkOperation": operation, "userErrors": runner.cancel(operation)}


MUTATIONS: Final[dict[str, RootResolver]] = {
    "inventorySetQuantities": _inventory_set_quantities,
    "inventoryAdjustQuantities": _inventory_adjust_quantities,
    "orderCreate": _order_create,
    "orderCancel": _order_cancel,
    "webhookSubscriptionCreate": _webhook_subscription_create,
    "webhookSubscriptionDelete": _webhook_subscription_delete,
    "bulkOperationRunQuery": _bulk_operation_run_query,
    "bulkOperationCancel": _bulk_operation_cancel,
}


# --- the endpoint --------------------------------------------------------------------------------------------


def _variable_error(
    error: GraphQLError, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> dict[str, Any]:
    match = _VARIABLE.search(error.message)
    name = match.group(1) if match else ""
    definition = next(
        (d for d in operation.variable_definitions or () if d.variable.name.value == name), None
    )
    type_text = "unknown"
    locations: list[dict[str, int]] = []
    if definition is not None:
        type_text = print_ast(definition.type)
        if definition.loc is not None:
            location = definition.loc.source.get_location(definition.loc.start)
            locations = [{"line": location.line, "column": location.column}]
    return {
        "message": f"Variable ${name} of type {type_text} was provided invalid value",
        "locations": locations,
        "extensions": {
            "value": variables.get(name),
            "problems": [{"path": [], "explanation": error.message}],
        },
    }


class GraphQLEndpoint:
    """Answers one graphql.json body: returns the JSON document (HTTP status is always 200 here)."""

    def __init__(self, store: Store, bucket: LeakyBucket, *, extra: dict[str, Any] | None = None):
        self.store = store
        self.bucket = bucket
        self.extra = extra if extra is not None else {}
        self.max_cost = MAX_QUERY_COST

    def answer(self, body: Any, *, base_url: str = "") -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return {"errors": [{"message": "No query string was present"}]}
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return {"errors": [{"message": "Variables must be an object"}]}
        document, errors = parse_and_validate(body["query"])
        if errors or document is None:
            return {"errors": errors}
        operation = get_operation_ast(document, body.get("operationName"))
        if operation is None:
            name = body.get("operationName")
            message = f"No operation named '{name}'" if name else "An operation name is required"
            return {"errors": [{"message": message}]}
        coerced = get_variable_values(load_schema(), operation.variable_definitions or [], variables)
        if isinstance(coerced, list):
            return {"errors": [_variable_error(error, operation, variables) for error in coerced]}
        return self._run(
            document, operation, plain_variables(coerced), body.get("operationName"), variables, base_url
        )

    def _run(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        coerced: dict[str, Any],
        operation_name: str | None,
        variables: dict[str, Any],
        base_url: str,
    ) -> dict[str, Any]:
        schema = load_schema()
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        calculator = CostCalculator(schema, fragments, coerced)
        requested = calculator.operation_cost(operation)
        if requested > self.max_cost:
            return {
                "errors": [
                    {
                        "message": f"Query cost is {requested}, which exceeds the single query max cost limit "
                        f"({self.max_cost}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for more "
                        "information on how the\ncost of a query is calculated.\n\nTo query larger amounts of data "
                        "with fewer limits, bulk operations should be used instead.\nSee "
                        "https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n",
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": self.max_cost,
                            "documentation": THROTTLE_DOCS,
                        },
                    }
                ],
                "extensions": cost_extension(requested, None, self.bucket.status()),
            }
        if not self.bucket.take(requested):
            return {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOCS},
                    }
                ],
                "extensions": cost_extension(requested, None, self.bucket.status()),
            }
        self.store.run_jobs()
        ctx = Context(self.store, base_url=base_url, extra=self.extra)
        with self.store.lock:
            result = execute_sync(
                schema,
                document,
                context_value=ctx,
                variable_values=variables,
                operation_name=operation_name,
                field_resolver=field_resolver,
                type_resolver=type_resolver,
            )
        data = result.data
        if operation.operation == OperationType.MUTATION:
            actual = requested
        else:
            actual = min(requested, calculator.operation_cost(operation, data, actual=True))
        self.bucket.refund(requested - actual)
        answer: dict[str, Any] = {}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        answer["data"] = data
        answer["extensions"] = cost_extension(requested, actual, self.bucket.status())
        return answer
