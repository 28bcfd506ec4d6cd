"""Webhook bodies in the REST shapes Shopify sends for each topic (numeric ids plus `admin_graphql_api_id`,
prices as strings, snake_case keys, timestamps with the shop's offset)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connector.sandbox.shopify.models import (
    BulkOperation,
    Collection,
    InventoryLevel,
    Product,
    ProductVariant,
    rest_time,
)
from connector.sandbox.shopify.order_models import LineItem, Order


def _price(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _price_set(amount: Decimal, currency: str) -> dict[str, Any]:
    money = {"amount": _price(amount), "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def inventory_level(level: InventoryLevel) -> dict[str, Any]:
    return {
        "inventory_item_id": level.item.legacy_resource_id,
        "location_id": level.location.legacy_resource_id,
        "available": level.available if level.item.tracked else None,
        "updated_at": rest_time(level.updated_at),
        "admin_graphql_api_id": level.id,
    }


def variant(item: ProductVariant) -> dict[str, Any]:
    options = [value for _, value in item.options] + [None, None, None]
    return {
        "admin_graphql_api_id": item.id,
        "barcode": item.barcode,
        "compare_at_price": None if item.compare_at_price is None else _price(item.compare_at_price),
        "created_at": rest_time(item.created_at),
        "id": item.legacy_resource_id,
        "inventory_policy": item.inventory_policy.lower(),
        "position": item.position,
        "price": _price(item.price),
        "product_id": item.product.legacy_resource_id,
        "sku": item.sku,
        "taxable": item.taxable,
        "title": item.title,
        "updated_at": rest_time(item.updated_at),
        "option1": options[0],
        "option2": options[1],
        "option3": options[2],
        "image_id": None,
        "inventory_item_id": item.inventory_item.legacy_resource_id,
        "inventory_quantity": item.inventory_item.available(),
        "old_inventory_quantity": item.inventory_item.available(),
    }


def product(item: Product) -> dict[str, Any]:
    option_names: list[str] = []
    for entry in item.variants:
        for name, _ in entry.options:
            if name not in option_names:
                option_names.append(name)
    return {
        "admin_graphql_api_id": item.id,
        "body_html": item.description_html,
        "created_at": rest_time(item.created_at),
        "handle": item.handle,
        "id": item.legacy_resource_id,
        "product_type": item.product_type,
        "published_at": rest_time(item.created_at) if item.status == "ACTIVE" else None,
        "template_suffix": None,
        "title": item.title,
        "updated_at": rest_time(item.updated_at),
        "vendor": item.vendor,
        "status": item.status.lower(),
        "published_scope": "global",
        "tags": ", ".join(item.tags),
        "variants": [variant(entry) for entry in item.variants],
        "options": [
            {
                "name": name,
                "id": item.legacy_resource_id * 10 + position,
                "product_id": item.legacy_resource_id,
                "position": position,
                "values": sorted(
                    {value for entry in item.variants for n, value in entry.options if n == name}
                ),
            }
            for position, name in enumerate(option_names, start=1)
        ],
        "images": [],
        "image": None,
        "media": [],
        "variant_gids": [
            {"admin_graphql_api_id": entry.id, "updated_at": rest_time(entry.updated_at)}
            for entry in item.variants
        ],
        "has_variants_that_requires_components": False,
        "category": None,
    }


def collection(item: Collection) -> dict[str, Any]:
    """A custom collection as `collections/create` and `collections/update` carry it."""
    return {
        "id": item.legacy_resource_id,
        "handle": item.handle,
        "title": item.title,
        "updated_at": rest_time(item.updated_at),
        "body_html": item.description_html,
        "published_at": rest_time(item.created_at),
        "sort_order": item.sort_order.lower(),
        "template_suffix": None,
        "published_scope": "web",
        "admin_graphql_api_id": item.id,
    }


def product_deleted(item: Product) -> dict[str, Any]:
    return {"id": item.legacy_resource_id}


def _line_item(line: LineItem, currency: str) -> dict[str, Any]:
    return {
        "id": line.legacy_resource_id,
        "admin_graphql_api_id": line.id,
        "current_quantity": line.quantity - line.refunded_quantity,
        "fulfillable_quantity": max(0, line.quantity - line.refunded_quantity - line.fulfilled_quantity),
        "fulfillment_service": "manual",
        "fulfillment_status": (
            "fulfilled"
            if line.fulfilled_quantity >= line.quantity
            else "partial"
            if line.fulfilled_quantity
            else None
        ),
        "gift_card": False,
        "grams": 0,
        "name": line.name,
        "price": _price(line.price),
        "price_set": _price_set(line.price, currency),
        "product_exists": line.variant is not None,
        "product_id": line.product.legacy_resource_id if line.product else None,
        "properties": [],
        "quantity": line.quantity,
        "requires_shipping": line.requires_shipping,
        "sku": line.sku,
        "taxable": line.taxable,
        "title": line.title,
        "total_discount": "0.00",
        "total_discount_set": _price_set(Decimal(0), currency),
        "variant_id": line.variant.legacy_resource_id if line.variant else None,
        "variant_inventory_management": "shopify" if line.variant else None,
        "variant_title": line.variant_title,
        "vendor": line.vendor,
        "tax_lines": [_tax_line(tax, currency) for tax in line.tax_lines],
        "duties": [],
        "discount_allocations": [],
    }


def _tax_line(tax: dict[str, Any], currency: str) -> dict[str, Any]:
    amount = Decimal(str(tax["price"]))
    return {
        "channel_liable": bool(tax.get("channel_liable")),
        "price": _price(amount),
        "price_set": _price_set(amount, currency),
        "rate": float(tax["rate"]),
        "title": tax["title"],
    }


def _address(address: dict[str, Any] | None) -> dict[str, Any] | None:
    if address is None:
        return None
    keys = {
        "firstName": "first_name",
        "lastName": "last_name",
        "address1": "address1",
        "address2": "address2",
        "city": "city",
        "province": "province",
        "provinceCode": "province_code",
        "country": "country",
        "countryCode": "country_code",
        "zip": "zip",
        "phone": "phone",
        "company": "company",
    }
    shaped = {rest: address.get(graph) for graph, rest in keys.items()}
    shaped["name"] = " ".join(filter(None, (address.get("firstName"), address.get("lastName"))))
    shaped["latitude"] = None
    shaped["longitude"] = None
    return shaped


def order(item: Order) -> dict[str, Any]:
    currency = item.currency_code
    financial = item.financial_status.lower()
    fulfillment = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}.get(item.fulfillment_status)
    return {
        "id": item.legacy_resource_id,
        "admin_graphql_api_id": item.id,
        "app_id": 1354745,
        "cancel_reason": item.cancel_reason.lower() if item.cancel_reason else None,
        "cancelled_at": rest_time(item.cancelled_at),
        "closed_at": rest_time(item.closed_at),
        "confirmed": True,
        "contact_email": item.email,
        "created_at": rest_time(item.created_at),
        "currency": currency,
        "current_subtotal_price": _price(item.subtotal),
        "current_total_price": _price(item.total_price - item.refunded),
        "current_total_tax": _price(item.total_tax),
        "email": item.email,
        "financial_status": financial,
        "fulfillment_status": fulfillment,
        "name": item.name,
        "note": item.note,
        "note_attributes": [{"name": a["key"], "value": a["value"]} for a in item.custom_attributes],
        "number": item.number - 1000,
        "order_number": item.number,
        "presentment_currency": currency,
        "processed_at": rest_time(item.processed_at),
        "source_identifier": item.source_identifier,
        "source_name": item.source_name or "api",
        "subtotal_price": _price(item.subtotal),
        "subtotal_price_set": _price_set(item.subtotal, currency),
        "tags": ", ".join(item.tags),
        "tax_lines": [_tax_line(tax, currency) for tax in item.tax_lines],
        "taxes_included": item.taxes_included,
        "test": item.test,
        "total_discounts": "0.00",
        "total_line_items_price": _price(item.subtotal),
        "total_outstanding": _price(max(Decimal(0), item.total_price - item.received)),
        "total_price": _price(item.total_price),
        "total_price_set": _price_set(item.total_price, currency),
        "total_shipping_price_set": _price_set(item.total_shipping, currency),
        "total_tax": _price(item.total_tax),
        "total_tax_set": _price_set(item.total_tax, currency),
        "updated_at": rest_time(item.updated_at),
        "billing_address": _address(item.billing_address),
        "shipping_address": _address(item.shipping_address),
        "customer": None,
        "discount_codes": [],
        "fulfillments": _fulfillments(item, currency),
        "line_items": [_line_item(line, currency) for line in item.line_items],
        "refunds": _refunds(item),
        "shipping_lines": _shipping_lines(item, currency),
    }


def _fulfillments(item: Order, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f["id"],
            "admin_graphql_api_id": f"gid://shopify/Fulfillment/{f['id']}",
            "created_at": rest_time(f["created_at"]),
            "order_id": item.legacy_resource_id,
            "status": "success",
            "tracking_company": f.get("tracking_company"),
            "tracking_number": f.get("tracking_number"),
            "line_items": [
                _line_item(line, currency)
                for line in item.line_items
                if line.legacy_resource_id in f["lines"]
            ],
        }
        for f in item.fulfillments
    ]


def _refunds(item: Order) -> list[dict[str, Any]]:
    return [
        {
            "id": refund["id"],
            "admin_graphql_api_id": f"gid://shopify/Refund/{refund['id']}",
            "created_at": rest_time(refund["created_at"]),
            "note": refund.get("note"),
            "order_id": item.legacy_resource_id,
        }
        for refund in item.refunds
    ]


def _shipping_lines(item: Order, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "code": line.get("code"),
            "price": _price(Decimal(str(line["price"]))),
            "price_set": _price_set(Decimal(str(line["price"])), currency),
            "title": line.get("title"),
            "source": "shopify",
            "tax_lines": [],
        }
        for line in item.shipping_lines
    ]


def refund(item: Order, entry: dict[str, Any]) -> dict[str, Any]:
    currency = item.currency_code
    lines = {line.legacy_resource_id: line for line in item.line_items}
    return {
        "id": entry["id"],
        "admin_graphql_api_id": f"gid://shopify/Refund/{entry['id']}",
        "created_at": rest_time(entry["created_at"]),
        "note": entry.get("note"),
        "order_id": item.legacy_resource_id,
        "processed_at": rest_time(entry["created_at"]),
        "restock": bool(entry.get("restock")),
        "user_id": None,
        "order_adjustments": [],
        "transactions": [
            {
                "id": entry["transaction_id"],
                "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{entry['transaction_id']}",
                "amount": _price(entry["amount"]),
                "kind": "refund",
                "status": "success",
                "gateway": "manual",
                "currency": currency,
                "order_id": item.legacy_resource_id,
            }
        ],
        "refund_line_items": [
            {
                "id": entry["id"] * 10 + index,
                "line_item_id": line_id,
                "location_id": entry.get("location_id"),
                "quantity": quantity,
                "restock_type": "return" if entry.get("restock") else "no_restock",
                "subtotal": _price(lines[line_id].price * quantity),
                "subtotal_set": _price_set(lines[line_id].price * quantity, currency),
                "total_tax": "0.00",
                "line_item": _line_item(lines[line_id], currency),
            }
            for index, (line_id, quantity) in enumerate(entry["lines"].items())
            if line_id in lines
        ],
    }


def bulk_operation(item: BulkOperation) -> dict[str, Any]:
    return {
        "admin_graphql_api_id": item.id,
        "completed_at": rest_time(item.completed_at),
        "created_at": rest_time(item.created_at),
        "error_code": item.error_code.lower() if item.error_code else None,
        "status": item.status.lower(),
        "type": item.type.lower(),
    }
