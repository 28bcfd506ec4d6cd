"""A domain `Order` as `orderCreate` variables, and what comes back (or an order search finds) as an
`ExternalOrderRef`; the key's tag and search literals that find a pushed order again. Pure: nothing here does
I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from adapters.shopify import const
from adapters.shopify.mapper import decimal_text, gid_type
from connector.domain.money import Money
from connector.domain.orders import Address, Attribution, ExternalOrderRef, Order


def key_tag(idempotency_key_value: str) -> str:
    """The order tag that names one idempotency key (tags are at most 40 characters)."""
    return const.ORDER_KEY_TAG_PREFIX + hashlib.sha256(idempotency_key_value.encode()).hexdigest()[:24]


def search_literal(value: str) -> str:
    """`value` quoted for Shopify search syntax (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _money_bag(value: Money) -> dict[str, Any]:
    return {"shopMoney": {"amount": decimal_text(value), "currencyCode": value.currency}}


def _address(address: Address) -> dict[str, Any]:
    first, _, last = address.name.strip().rpartition(" ")
    data: dict[str, Any] = {
        "firstName": first or None,
        "lastName": last or address.name.strip(),
        "address1": address.line1,
        "address2": address.line2 or None,
        "city": address.city,
        "zip": address.postal_code or None,
        "countryCode": address.country_code.upper(),
        "provinceCode": address.province_code or None,
        "phone": address.phone or None,
    }
    return {key: value for key, value in data.items() if value is not None}


def _line_items(order: Order) -> tuple[list[dict[str, Any]], int, int]:
    """The order's `lineItems` at their prices with taxes, the total the buyer paid and the line discounts'
    total (minor units)."""
    currency = order.currency
    total = 0
    discount_total = 0
    lines: list[dict[str, Any]] = []
    for number, line in enumerate(order.lines, start=1):
        if line.quantity <= 0:
            raise ValueError(f"line {number}: quantity must be positive")
        if gid_type(line.variant_external_id) != "ProductVariant":
            raise ValueError(f"line {number}: {line.variant_external_id!r} is not a ProductVariant GID")
        for part in (line.unit_price, line.discount, line.tax):
            if part is not None and part.currency != currency:
                raise ValueError(f"line {number}: {part.currency} amount in a {currency} order")
        gross = line.unit_price.minor * line.quantity
        discount = line.discount.minor if line.discount else 0
        tax = line.tax.minor if line.tax else 0
        item: dict[str, Any] = {
            "variantId": line.variant_external_id,
            "quantity": line.quantity,
            "priceSet": _money_bag(line.unit_price),
        }
        if tax:
            net = gross - discount
            rate = (Decimal(tax) / Decimal(net)).quantize(Decimal("0.0001")) if net > 0 else Decimal(0)
            item["taxLines"] = [
                {"title": "Tax", "rate": str(rate), "priceSet": _money_bag(Money(tax, currency))}
            ]
        lines.append(item)
        total += gross - discount + tax
        discount_total += discount
    return lines, total, discount_total


def _creator_tags(order: Order) -> list[str]:
    if order.attribution is None:
        return []
    return [(const.CREATOR_TAG_PREFIX + order.attribution.creator_ref)[: const.TAG_MAX_LENGTH]]


def attribution_attributes(attribution: Attribution) -> list[dict[str, str]]:
    """The creator credited with a sale, as the order's custom attributes (shown in the merchant's admin)."""
    found = {
        "creator": attribution.creator_ref,
        "attributed_via": attribution.via,
        "link_code": attribution.link_code,
        "click_id": attribution.click_id,
    }
    return [{"key": const.ATTRIBUTE_PREFIX + key, "value": value} for key, value in found.items() if value]


def order_variables(
    order: Order,
    key: str,
    *,
    inventory_behaviour: str = const.DEFAULT_INVENTORY_BEHAVIOUR,
    extra_tags: Sequence[str] = (),
    source_name: str | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """`orderCreate` variables for a platform order: lines at their prices with taxes, a line discount total
    as one fixed discount, and one successful SALE transaction for the amount the buyer paid."""
    if not order.lines:
        raise ValueError("order has no lines")
    currency = order.currency
    lines, total, discount_total = _line_items(order)
    tags = [const.ORDER_TAG, key_tag(key), *(t for t in extra_tags if t), *_creator_tags(order)]
    data: dict[str, Any] = {
        "currency": currency,
        "lineItems": lines,
        "sourceIdentifier": key,
        "tags": list(dict.fromkeys(tags)),
        "note": f"Storelink order {order.id}",
        "transactions": [
            {
                "kind": "SALE",
                "status": "SUCCESS",
                "gateway": const.TRANSACTION_GATEWAY,
                "amountSet": _money_bag(Money(total, currency)),
                "test": test,
            }
        ],
        "test": test,
    }
    if discount_total:
        data["discountCode"] = {
            "itemFixedDiscountCode": {
                "code": "STORELINK",
                "amountSet": _money_bag(Money(discount_total, currency)),
            }
        }
    if order.attribution is not None:
        data["customAttributes"] = attribution_attributes(order.attribution)
    if order.buyer_email:
        data["email"] = order.buyer_email
    if order.shipping_address is not None:
        data["shippingAddress"] = _address(order.shipping_address)
    if source_name:
        data["sourceName"] = source_name
    options = {
        "inventoryBehaviour": inventory_behaviour,
        "sendReceipt": False,
        "sendFulfillmentReceipt": False,
    }
    return {"order": data, "options": options}


def order_ref(node: object) -> ExternalOrderRef:
    """The store reference of an Order node (its GID as text, and its name such as "#1001")."""
    if not isinstance(node, dict) or not isinstance(node.get("id"), str):
        raise ValueError("order node has no id")
    name = node.get("name")
    return ExternalOrderRef(external_id=str(node["id"]), name=name if isinstance(name, str) else None)
