"""Inbound Shopify webhook deliveries: HMAC verification, envelope (delivery id, topic, time) and parsing.

Verification is base64(HMAC-SHA256(raw body, app client secret)) compared with `X-Shopify-Hmac-Sha256` in
constant time (`hmac.compare_digest`), against every configured secret so a secret rotation (Shopify may
sign with the old secret for up to an hour) loses no delivery. Shopify's own `shopifyapp` package (1.0.2)
has `verify_webhook_req`, doing the same computation, but it is not used here: it takes the body as a `str`
and re-encodes it, so it does not check the bytes as received; it parses and re-serializes the whole JSON
body on every call only to build a redacted log record; it takes at most two secrets; and it wants a
request method and a client id this layer does not have.

Parsing maps topics to `connector.domain.store_events.StoreEvent`s without calling the store. Ids are Shopify
GIDs built from the numeric ids of the payload. `inventory_levels/update` names an inventory item and a
location (its `admin_graphql_api_id` is an InventoryLevel GID with a query string, which is not used); the
core finds the variant through the inventory item ref the catalog sync stored. Its `available` is null for
an item whose stock Shopify does not track. Inventory changes are timed by `X-Shopify-Triggered-At`
(sub-second) when present, else by the body's `updated_at` (whole seconds), so two changes within one
second are still ordered. The compliance topics (`customers/data_request`, `customers/redact`,
`shop/redact`) become privacy events naming the customer (id, email, phone) and the orders concerned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from adapters.shopify import const
from adapters.shopify.mapper import gid, gid_type, parse_time, quantity
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.ports import WebhookEnvelope
from connector.domain.store_events import StoreEvent, StoreEventKind

HMAC_HEADERS: Final = ("x-shopify-hmac-sha256", "shopify-hmac-sha256")
SHOP_HEADER: Final = "x-shopify-shop-domain"
TOPIC_HEADER: Final = "x-shopify-topic"
DELIVERY_HEADER: Final = "x-shopify-webhook-id"
TRIGGERED_HEADER: Final = "x-shopify-triggered-at"
MAX_ID_CHARS: Final = 255
RETAINED_CREDENTIALS: Final = ("client_id", "client_secret", "old_client_secret")
"""App credentials kept after an uninstall: compliance deliveries (`shop/redact` comes 48 hours later) are
signed with the app secret and must still verify. Access and refresh tokens are purged."""
_SHOP = re.compile(const.SHOP_DOMAIN_PATTERN)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                value = candidate
                break
    return value.strip() if isinstance(value, str) else ""


def signature(secret: str, raw_body: bytes) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify sends for `raw_body` signed with `secret`."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(secrets: Sequence[str], headers: Mapping[str, str], raw_body: bytes) -> bool:
    """True when the delivery's HMAC matches one of `secrets` (newest first); False, never raises."""
    received = ""
    for name in HMAC_HEADERS:
        received = _header(headers, name)
        if received:
            break
    if not received or not isinstance(raw_body, bytes | bytearray):
        return False
    try:
        expected_bytes = received.encode("ascii")
    except UnicodeEncodeError:
        return False
    matched = False
    for secret in secrets:
        if secret and hmac.compare_digest(signature(secret, bytes(raw_body)).encode("ascii"), expected_bytes):
            matched = True  # every secret is tried, so timing does not tell which one matched
    return matched


def store_ref(headers: Mapping[str, str]) -> str | None:
    """The shop domain a delivery names (`X-Shopify-Shop-Domain`), lower-cased; None when absent or invalid."""
    shop = _header(headers, SHOP_HEADER).lower()
    return shop if shop and _SHOP.fullmatch(shop) else None


def _body(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}", code="bad_json") from None
    except RecursionError:
        raise ValidationError("body is nested too deeply to read", code="too_deep") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", code="bad_body")
    return body


def _time(value: object, name: str) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError:
        raise ValidationError(
            f"{name} {str(value)[:40]!r} is not an ISO 8601 time", code="bad_body"
        ) from None


def envelope_time(headers: Mapping[str, str]) -> datetime | None:
    """`X-Shopify-Triggered-At` as a UTC time; None when absent or unreadable."""
    try:
        return parse_time(_header(headers, TRIGGERED_HEADER) or None)
    except ValueError:
        return None


def envelope(headers: Mapping[str, str], raw_body: bytes) -> WebhookEnvelope:
    """Delivery id `X-Shopify-Webhook-Id`, topic `X-Shopify-Topic`, time `X-Shopify-Triggered-At` (else the
    body's `updated_at`); the body is parsed too, so a malformed delivery is refused when it arrives."""
    delivery_id = _header(headers, DELIVERY_HEADER)
    if not delivery_id or len(delivery_id) > MAX_ID_CHARS:
        raise ValidationError("X-Shopify-Webhook-Id header is missing or too long", code="bad_headers")
    topic = _header(headers, TOPIC_HEADER).lower()
    if not topic:
        raise ValidationError("X-Shopify-Topic header is missing", code="bad_headers")
    if topic not in const.TOPICS:
        raise ValidationError(f"topic {topic!r} is not one Storelink subscribes to", code="unknown_topic")
    body = _body(raw_body)
    triggered_at = _time(_header(headers, TRIGGERED_HEADER) or None, "X-Shopify-Triggered-At")
    if triggered_at is None:
        triggered_at = _time(body.get("updated_at"), "updated_at")
    events(topic, body, triggered_at, store_ref(headers))
    return WebhookEnvelope(delivery_id=delivery_id, topic=topic, triggered_at=triggered_at)


def parse(
    topic: str, raw_body: bytes, triggered_at: datetime | None = None, shop: str | None = None
) -> list[StoreEvent]:
    """The store events of one delivery; PermanentError for a topic Storelink does not take."""
    if topic not in const.TOPICS:
        raise PermanentError(f"Shopify topic {topic!r} is not handled", code="unknown_topic")
    return events(topic, _body(raw_body), triggered_at, shop)


def _gid(body: Mapping[str, Any], key: str, resource: str) -> str:
    try:
        return gid(resource, body.get(key))
    except ValueError as exc:
        raise ValidationError(f"{key}: {exc}", code="bad_body", details={"field": key}) from None


def _order_event(kind: StoreEventKind, body: Mapping[str, Any], when: datetime | None) -> StoreEvent:
    data: dict[str, object] = {}
    for key in ("name", "financial_status", "fulfillment_status", "cancel_reason", "source_identifier"):
        value = body.get(key)
        if isinstance(value, str):
            data[key] = value
    if kind is StoreEventKind.ORDER_FULFILLED:
        tracking: list[dict[str, str]] = []
        for fulfillment in body.get("fulfillments") or []:
            if not isinstance(fulfillment, dict):
                continue
            numbers = fulfillment.get("tracking_numbers") or []
            urls = fulfillment.get("tracking_urls") or []
            company = fulfillment.get("tracking_company")
            for position, number in enumerate(numbers):
                entry = {"number": str(number)}
                if position < len(urls) and urls[position]:
                    entry["url"] = str(urls[position])
                if isinstance(company, str) and company:
                    entry["company"] = company
                tracking.append(entry)
        if tracking:
            data["tracking"] = tracking
    return StoreEvent(kind, _gid(body, "id", "Order"), when, data)


def _refund_lines(body: Mapping[str, Any]) -> list[dict[str, object]]:
    """The refunded units per variant (`variant_ref` as the catalog stores it), with their subtotal."""
    lines: list[dict[str, object]] = []
    for item in body.get("refund_line_items") or []:
        if not isinstance(item, dict) or not isinstance(item.get("line_item"), dict):
            continue
        quantity = item.get("quantity")
        variant = item["line_item"].get("variant_id")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0 or variant is None:
            continue
        try:
            line: dict[str, object] = {"variant_ref": gid("ProductVariant", variant), "quantity": quantity}
        except ValueError:
            continue
        if isinstance(item.get("subtotal"), str | int | float):
            line["amount"] = str(item["subtotal"])
        lines.append(line)
    return lines


def _refund_amount(body: Mapping[str, Any]) -> tuple[str, str | None] | None:
    total = Decimal(0)
    currency: str | None = None
    found = False
    for transaction in body.get("transactions") or []:
        if not isinstance(transaction, dict):
            continue
        if transaction.get("kind") != "refund" or transaction.get("status") not in ("success", None):
            continue
        try:
            total += Decimal(str(transaction.get("amount")))
        except InvalidOperation:
            continue
        found = True
        if isinstance(transaction.get("currency"), str):
            currency = transaction["currency"]
    return (str(total), currency) if found else None


def events(
    topic: str, body: Mapping[str, Any], triggered_at: datetime | None, shop: str | None = None
) -> list[StoreEvent]:
    """The store events of a parsed delivery body; ValidationError naming the bad field."""
    updated = _time(body.get("updated_at"), "updated_at") or triggered_at
    if topic in ("products/create", "products/update"):
        return [StoreEvent(StoreEventKind.PRODUCT_CHANGED, _gid(body, "id", "Product"), updated)]
    if topic == "products/delete":
        return [StoreEvent(StoreEventKind.PRODUCT_DELETED, _gid(body, "id", "Product"), triggered_at)]
    if topic == "inventory_levels/update":
        available = body.get("available")
        try:
            amount = quantity(available)
        except ValueError:
            raise ValidationError("available must be an integer or null", code="bad_body") from None
        item = _gid(body, "inventory_item_id", "InventoryItem")
        data: dict[str, object] = {
            "inventory_item_ref": item,
            "location_ref": _gid(body, "location_id", "Location"),
            "available": amount,
        }
        return [StoreEvent(StoreEventKind.INVENTORY_CHANGED, item, triggered_at or updated, data)]
    if topic == "orders/fulfilled":
        return [_order_event(StoreEventKind.ORDER_FULFILLED, body, updated)]
    if topic == "orders/cancelled":
        return [_order_event(StoreEventKind.ORDER_CANCELLED, body, updated)]
    if topic == "orders/updated":
        if body.get("cancelled_at"):
            return [_order_event(StoreEventKind.ORDER_CANCELLED, body, updated)]
        if body.get("fulfillment_status") == "fulfilled":
            return [_order_event(StoreEventKind.ORDER_FULFILLED, body, updated)]
        if body.get("financial_status") == "refunded":
            return [_order_event(StoreEventKind.ORDER_REFUNDED, body, updated)]
        _gid(body, "id", "Order")
        return []
    if topic == "refunds/create":
        when = _time(body.get("processed_at") or body.get("created_at"), "created_at") or triggered_at
        refund: dict[str, object] = {"refund_id": _gid(body, "id", "Refund")}
        refunded = _refund_amount(body)
        if refunded is not None:
            refund["amount"], currency = refunded
            if currency:
                refund["currency"] = currency
        lines = _refund_lines(body)
        if lines:
            refund["lines"] = lines
        return [StoreEvent(StoreEventKind.ORDER_REFUNDED, _gid(body, "order_id", "Order"), when, refund)]
    if topic == "app/uninstalled":
        domain = body.get("myshopify_domain")
        ref = domain if isinstance(domain, str) and domain else shop
        if not ref:
            raise ValidationError("app/uninstalled names no shop", code="bad_body")
        retain: dict[str, object] = {"retain_credentials": list(RETAINED_CREDENTIALS)}
        return [StoreEvent(StoreEventKind.APP_UNINSTALLED, ref.lower(), triggered_at or updated, retain)]
    if topic == "bulk_operations/finish":
        operation = body.get("admin_graphql_api_id")
        if not isinstance(operation, str) or gid_type(operation) != "BulkOperation":
            raise ValidationError("admin_graphql_api_id must be a BulkOperation GID", code="bad_body")
        ended = _time(body.get("completed_at"), "completed_at") or triggered_at
        status = body.get("status")
        finished: dict[str, object] = {"status": str(status).upper() if isinstance(status, str) else None}
        if isinstance(body.get("error_code"), str):
            finished["error_code"] = str(body["error_code"]).upper()
        return [StoreEvent(StoreEventKind.BULK_OPERATION_FINISHED, operation, ended, finished)]
    if topic in const.COMPLIANCE_TOPICS:
        return [_compliance(topic, body, triggered_at, shop)]
    raise PermanentError(f"Shopify topic {topic!r} is not handled", code="unknown_topic")


def _shop_of(body: Mapping[str, Any], shop: str | None) -> str:
    domain = body.get("shop_domain")
    ref = domain if isinstance(domain, str) and domain else shop
    if not ref:
        raise ValidationError("the delivery names no shop (shop_domain)", code="bad_body")
    return ref.lower()


def _contact(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _compliance(
    topic: str, body: Mapping[str, Any], triggered_at: datetime | None, shop: str | None
) -> StoreEvent:
    """A `customers/data_request`, `customers/redact` or `shop/redact` delivery as a privacy event."""
    ref = _shop_of(body, shop)
    if topic == "shop/redact":
        return StoreEvent(StoreEventKind.SHOP_REDACTED, ref, triggered_at)
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise ValidationError(f"{topic} names no customer", code="bad_body", details={"field": "customer"})
    orders_key = "orders_requested" if topic == "customers/data_request" else "orders_to_redact"
    orders = body.get(orders_key) or []
    if not isinstance(orders, list):
        raise ValidationError(f"{orders_key} must be a list", code="bad_body", details={"field": orders_key})
    data: dict[str, object] = {
        "customer_ref": _gid(customer, "id", "Customer") if customer.get("id") is not None else None,
        "email": _contact(customer.get("email")),
        "phone": _contact(customer.get("phone")),
        "order_refs": [_gid({"id": number}, "id", "Order") for number in orders],
    }
    if topic == "customers/data_request":
        request = body.get("data_request")
        request_id = request.get("id") if isinstance(request, dict) else None
        data["request_ref"] = str(request_id) if request_id is not None else None
        return StoreEvent(StoreEventKind.CUSTOMER_DATA_REQUESTED, ref, triggered_at, data)
    return StoreEvent(StoreEventKind.CUSTOMER_REDACTED, ref, triggered_at, data)
