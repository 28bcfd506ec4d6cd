"""The Shopify emulator's control endpoints (mounted under `/_sandbox` beside the Admin API; see
`connector.sandbox.control`). Each change is the shop's own, so it sends the webhooks Shopify would:

    GET    /_sandbox                       the shop, its app's credentials, counts, these endpoints
    POST   /_sandbox/products              {"title", "vendor"?, "variants": [{"title"?, "sku", "price",
                                           "available"}]}: one product (products/create); or {"count": N,
                                           "variants_per_product"?: 3}: N generated ones (no webhook: a full
                                           sync reads them)
    PATCH  /_sandbox/products/<id>         {"title"?, "vendor"?, "status"?: "ACTIVE"|"DRAFT"|"ARCHIVED"}
                                           (products/update)
    DELETE /_sandbox/products/<id>         (products/delete)
    POST   /_sandbox/inventory             {"sku" | "variant_id", "available"} (inventory_levels/update)
    GET    /_sandbox/orders                the shop's orders and their lines (the ids the calls below take)
    POST   /_sandbox/orders/<id>/fulfil    {"lines"?: {"<line id>": units}, "tracking_number"?}
                                           (fulfillments/create, orders/fulfilled or partially_fulfilled)
    POST   /_sandbox/orders/<id>/refund    {"lines"?: {"<line id>": units}, "amount"?, "restock"?: true,
                                           "note"?}: everything when no lines (refunds/create)
    POST   /_sandbox/orders/<id>/cancel    {"reason"?, "restock"?, "refund"?} (orders/cancelled)
    POST   /_sandbox/faults                {"next": [503, {"status": 429, "retry_after": 2}, {"latency": 5},
                                           {"drop": true}]} and/or {"probability": 0.2, "faults": [...],
                                           "seed"?}: answers of the next Admin API requests
    DELETE /_sandbox/faults                no more faults

Ids in paths are the numbers (`legacyResourceId`) the listings give."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, Response

from connector.sandbox.control import (
    ControlError,
    answer,
    body,
    control_app,
    faults,
    found,
    integer,
    probability,
    units,
)
from connector.sandbox.shopify.faults import ApiFault
from connector.sandbox.shopify.models import ProductVariant
from connector.sandbox.shopify.order_models import Order
from connector.sandbox.shopify.store import Store

if TYPE_CHECKING:
    from connector.sandbox.shopify.app import ShopifyEmulator

ENDPOINTS: Final = (
    "GET /_sandbox",
    "POST /_sandbox/products",
    "PATCH /_sandbox/products/<id>",
    "DELETE /_sandbox/products/<id>",
    "POST /_sandbox/inventory",
    "GET /_sandbox/orders",
    "POST /_sandbox/orders/<id>/fulfil",
    "POST /_sandbox/orders/<id>/refund",
    "POST /_sandbox/orders/<id>/cancel",
    "POST /_sandbox/faults",
    "DELETE /_sandbox/faults",
)
PRODUCT_FIELDS: Final = ("title", "vendor", "status", "product_type")


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.legacy_resource_id,
        "gid": order.id,
        "name": order.name,
        "source_identifier": order.source_identifier,
        "tags": order.tags,
        "cancelled": order.cancelled_at is not None,
        "lines": [
            {
                "id": line.legacy_resource_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "fulfilled": line.fulfilled_quantity,
                "refunded": line.refunded_quantity,
            }
            for line in order.line_items
        ],
    }


def _add_products(store: Store, document: dict[str, Any]) -> Response:
    if "count" in document:
        made = store.seed_catalog(
            integer(document, "count", minimum=1),
            integer(document, "variants_per_product", 3, minimum=1),
            seed=len(store.products),
        )
        return answer({"products": [product.legacy_resource_id for product in made]}, 201)
    title = document.get("title")
    variants = document.get("variants") or [{}]
    if not isinstance(title, str) or not title.strip() or not isinstance(variants, list):
        raise ControlError(400, "give a title and a list of variants, or a count")
    product = store.add_product(title, variants=variants, vendor=str(document.get("vendor") or "Acme"))
    return answer(
        {
            "id": product.legacy_resource_id,
            "variants": [
                {
                    "id": v.legacy_resource_id,
                    "sku": v.sku,
                    "inventory_item_id": v.inventory_item.legacy_resource_id,
                }
                for v in product.variants
            ],
        },
        201,
    )


def _variant(store: Store, document: dict[str, Any]) -> ProductVariant:
    if "variant_id" in document:
        return found(lambda: store.variant(document["variant_id"]), "such variant")
    sku = document.get("sku")
    with store.lock:
        variant = next((v for v in store.variants.values() if sku and v.sku == sku), None)
    if variant is None:
        raise ControlError(404, f"no variant with the SKU {sku!r}")
    return variant


def _set_stock(store: Store, document: dict[str, Any]) -> Response:
    available = integer(document, "available")
    variant = _variant(store, document)
    level = store.set_inventory(variant.inventory_item.legacy_resource_id, None, available)
    return answer(
        {"variant_id": variant.legacy_resource_id, "sku": variant.sku, "available": level.available}
    )


def _refund(store: Store, order_id: str, document: dict[str, Any]) -> Response:
    order = found(lambda: store.order(order_id), f"order {order_id}")
    amount = document.get("amount")
    try:
        value = Decimal(str(amount)) if amount is not None else None
    except InvalidOperation:
        raise ControlError(400, "amount must be a decimal number") from None
    entry = store.refund_order(
        order.legacy_resource_id,
        lines=units(document),
        amount=value,
        restock=bool(document.get("restock", True)),
        note=document.get("note"),
    )
    return answer({"refund_id": entry["id"], "amount": str(entry["amount"]), "order": order_json(order)}, 201)


def _set_faults(emulator: ShopifyEmulator, document: dict[str, Any]) -> Response:
    planned = faults(document, "next", ApiFault)
    if planned:
        emulator.faults.plan(*planned)
    if "probability" in document:
        emulator.faults.set_random(
            probability(document), faults(document, "faults", ApiFault), seed=integer(document, "seed", 0)
        )
    return answer({"planned": len(planned)})


def build(emulator: ShopifyEmulator) -> Flask:
    """The control app of one emulated shop."""
    app = control_app("shopify-sandbox")
    store = emulator.store

    @app.get("/")
    def shop() -> Response:
        with store.lock:
            counts = {
                "products": len(store.products),
                "variants": len(store.variants),
                "orders": len(store.orders),
            }
        return answer(
            {
                "shop": store.shop.myshopify_domain,
                "admin_api": f"{emulator.base_url}/admin/api",
                "app": {
                    "client_id": emulator.client.client_id,
                    "client_secret": emulator.client.client_secret,
                },
                **counts,
                "subscriptions": [s.topic for s in store.subscriptions.values()],
                "endpoints": ENDPOINTS,
            }
        )

    @app.post("/products")
    def add_products() -> Response:
        return _add_products(store, body())

    @app.patch("/products/<product_id>")
    def change_product(product_id: str) -> Response:
        changes = {name: value for name, value in body().items() if name in PRODUCT_FIELDS}
        product = found(lambda: store.update_product(product_id, **changes), f"product {product_id}")
        return answer({"id": product.legacy_resource_id, "title": product.title, "status": product.status})

    @app.delete("/products/<product_id>")
    def delete_product(product_id: str) -> Response:
        found(lambda: store.delete_product(product_id), f"product {product_id}")
        return answer({"deleted": product_id})

    @app.post("/inventory")
    def set_stock() -> Response:
        return _set_stock(store, body())

    _order_routes(app, store)

    @app.post("/faults")
    def set_faults() -> Response:
        return _set_faults(emulator, body())

    @app.delete("/faults")
    def clear_faults() -> Response:
        emulator.faults.clear()
        return answer({"planned": 0})

    return app


def _order_routes(app: Flask, store: Store) -> None:
    @app.get("/orders")
    def orders() -> Response:
        with store.lock:
            listed = [order_json(order) for order in store.orders.values()]
        return answer({"orders": listed})

    @app.post("/orders/<order_id>/fulfil")
    def fulfil(order_id: str) -> Response:
        document = body()
        order = found(
            lambda: store.fulfill_order(
                order_id, lines=units(document), tracking_number=document.get("tracking_number")
            ),
            f"order {order_id}",
        )
        return answer(order_json(order))

    @app.post("/orders/<order_id>/refund")
    def refund(order_id: str) -> Response:
        return _refund(store, order_id, body())

    @app.post("/orders/<order_id>/cancel")
    def cancel(order_id: str) -> Response:
        document = body()
        job, failures = store.cancel_order(
            order_id,
            reason=str(document.get("reason") or "OTHER"),
            restock=bool(document.get("restock", False)),
            refund=bool(document.get("refund", False)),
        )
        if job is None:
            raise ControlError(
                404 if failures and failures[0].code == "NOT_FOUND" else 409, failures[0].message
            )
        store.run_jobs(force=True)
        return answer(order_json(store.order(order_id)))
