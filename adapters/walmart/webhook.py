"""Inbound Walmart notifications: delivery authentication, envelope (event id, type, time) and parsing.

Walmart authenticates a delivery as its subscription says (`authDetails`), in the header named by
`authHeaderName` (default here `Authorization`):

- HMAC: "HMACSHA256 of the complete body, keyed with the client secret". Whether it is hex or base64 is not
  documented, so both are accepted (hex in either case), with or without an `HMAC `/`sha256=` prefix.
- BASIC_AUTH: base64 of `userName:password`, with or without a `Basic ` prefix.

Every comparison is constant-time, and verification never raises.

Deliveries are `{"source": {"eventType", "eventTime", "eventId"}, "payload": {...}}`; `eventId` is the dedupe
key. Parsing (no API call):

- `INVENTORY_OOS`: stock of the SKU from `payload.shipNodes[].availToSellQty`: one event per node, at that
  node, when the merchant sells one ship node; else one event with the sum at the home location (0 when
  no node is listed: the item is out of stock).
- `OFFER_PUBLISHED` / `OFFER_UNPUBLISHED`: the item's product changed (it is read again).
- `PO_CREATED`, `PO_LINE_AUTOCANCELLED`, `ORDER_UPDATES`: an order placed on Walmart (or a line of one
  cancelled) changed Walmart's stock of its SKUs: one `STORE_ORDER_PLACED` event naming the purchase order
  and its SKUs, so the core reads the seller's orders again at once (rather than at its next poll).
- `ORDER_STATUS_UPDATE` / `ORDER_SHIPMENT_UPDATE` (Multichannel orders pushed by Storelink, named by
  `originSystemOrderId`, i.e. our `sellerOrderId`): shipped lines make the order fulfilled (with tracking),
  every line cancelled makes it cancelled; other states (acknowledged) carry no event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from adapters.walmart import const
from adapters.walmart.mapper import epoch_ms, quantity, ref, text
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.ports import WebhookEnvelope
from connector.domain.store_events import StoreEvent, StoreEventKind

MAX_ID_CHARS: Final = 255
_SHIPPED: Final = frozenset({"SHIPPED", "DELIVERED", "PARTIALLY_SHIPPED"})
_CANCELLED: Final = frozenset({"CANCELED", "CANCELLED"})
_HMAC_PREFIXES: Final = ("hmacsha256 ", "hmac-sha256 ", "hmac ", "sha256=")


def signature(secret: str, raw_body: bytes) -> str:
    """The hex HMAC-SHA256 of `raw_body` keyed with `secret` (the client secret)."""
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value.strip()
    return ""


def verify_hmac(secret: str | None, header_name: str, headers: Mapping[str, str], raw_body: bytes) -> bool:
    """True when the header carries the body's HMAC-SHA256 with `secret`, hex or base64; never raises."""
    try:
        if not secret or not isinstance(raw_body, bytes | bytearray):
            return False
        received = _header(headers, header_name)
        lowered = received.lower()
        for prefix in _HMAC_PREFIXES:
            if lowered.startswith(prefix):
                received = received[len(prefix) :].strip()
                break
        if not received:
            return False
        digest = hmac.new(secret.encode("utf-8"), bytes(raw_body), hashlib.sha256).digest()
        try:
            claimed = received.encode("ascii")
        except UnicodeEncodeError:
            return False
        as_hex = hmac.compare_digest(digest.hex().encode("ascii"), claimed.lower())
        as_base64 = hmac.compare_digest(base64.b64encode(digest), claimed)
        return as_hex or as_base64
    except Exception:  # verification never raises: an unreadable delivery is not authentic
        return False


def verify_basic(
    username: str | None, password: str | None, header_name: str, headers: Mapping[str, str]
) -> bool:
    """True when the header carries base64(`username:password`), with or without `Basic `; never raises."""
    try:
        if not username or password is None:
            return False
        received = _header(headers, header_name)
        if received[:6].lower() == "basic ":
            received = received[6:].strip()
        try:
            decoded = base64.b64decode(received.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return False
        expected = f"{username}:{password}".encode()
        return hmac.compare_digest(decoded, expected)
    except Exception:  # verification never raises
        return False


def _body(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}", code="bad_json") from None
    except RecursionError:
        raise ValidationError("body is nested too deeply to read", code="too_deep") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", code="bad_body")
    return body


def _source(body: Mapping[str, Any]) -> Mapping[str, Any]:
    source = body.get("source")
    if not isinstance(source, Mapping):
        raise ValidationError("body has no source object", code="bad_body", details={"field": "source"})
    return source


def _payload(body: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = body.get("payload")
    if not isinstance(payload, Mapping):
        raise ValidationError("body has no payload object", code="bad_body", details={"field": "payload"})
    return payload


def _time(value: object, name: str) -> datetime | None:
    try:
        return epoch_ms(value)
    except ValueError:
        raise ValidationError(f"{name} {str(value)[:40]!r} is not a time", code="bad_body") from None


def envelope(raw_body: bytes, ship_node: str | None = None) -> WebhookEnvelope:
    """Delivery id `source.eventId`, topic `source.eventType`, time `source.eventTime`; the payload is parsed
    too, so a malformed delivery is refused when it arrives."""
    body = _body(raw_body)
    source = _source(body)
    event_id = text(source.get("eventId"))
    if not event_id or len(event_id) > MAX_ID_CHARS:
        raise ValidationError("source.eventId is missing or too long", code="bad_body")
    topic = text(source.get("eventType"))
    if not topic:
        raise ValidationError("source.eventType is missing", code="bad_body")
    if topic not in const.TOPICS:
        raise ValidationError(
            f"event type {topic!r} is not one Storelink subscribes to", code="unknown_topic"
        )
    when = _time(source.get("eventTime"), "source.eventTime")
    events(topic, _payload(body), when, ship_node)
    return WebhookEnvelope(delivery_id=event_id, topic=topic, triggered_at=when)


def parse(topic: str, raw_body: bytes, ship_node: str | None = None) -> list[StoreEvent]:
    """The store events of one stored delivery; PermanentError for an event type Storelink does not take."""
    if topic not in const.TOPICS:
        raise PermanentError(f"Walmart event type {topic!r} is not handled", code="unknown_topic")
    body = _body(raw_body)
    when = _time(_source(body).get("eventTime"), "source.eventTime")
    return events(topic, _payload(body), when, ship_node)


def _sku(payload: Mapping[str, Any]) -> str:
    try:
        return ref(payload.get("sku"), "payload.sku")
    except ValueError as exc:
        raise ValidationError(str(exc), code="bad_body", details={"field": "payload.sku"}) from None


def _list(payload: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(f"payload.{key} must be a list", code="bad_body", details={"field": key})
    return [entry for entry in value if isinstance(entry, Mapping)]


def _stock(
    topic: str, payload: Mapping[str, Any], when: datetime | None, ship_node: str | None
) -> list[StoreEvent]:
    sku = _sku(payload)
    nodes: list[tuple[str | None, int]] = []
    for position, node in enumerate(_list(payload, "shipNodes")):
        try:
            amount = max(0, quantity(node.get("availToSellQty", 0)))
        except ValueError:
            raise ValidationError(
                f"payload.shipNodes[{position}].availToSellQty is not a whole number", code="bad_body"
            ) from None
        nodes.append((text(node.get("shipNode")), amount))
    if ship_node is not None:
        if not nodes:  # out of stock and no node named: the merchant's node is out of stock too
            nodes = [(ship_node, 0)]
        return [
            StoreEvent(
                StoreEventKind.INVENTORY_CHANGED,
                sku,
                when,
                {"available": amount, "location_ref": name, "event_type": topic},
            )
            for name, amount in nodes
            if name
        ]
    total = sum(amount for _, amount in nodes)
    return [
        StoreEvent(StoreEventKind.INVENTORY_CHANGED, sku, when, {"available": total, "event_type": topic})
    ]


def _order_lines(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lines = payload.get("orderLines")
    if isinstance(lines, Mapping):
        lines = lines.get("orderLine")
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise ValidationError("payload.orderLines must be a list", code="bad_body")
    return [line for line in lines if isinstance(line, Mapping)]


def _walmart_order(topic: str, payload: Mapping[str, Any], when: datetime | None) -> list[StoreEvent]:
    po = text(payload.get("purchaseOrderId"))
    skus: dict[str, None] = {}
    for position, line in enumerate(_order_lines(payload)):
        item = line.get("item")
        sku = text(line.get("sku")) or (text(item.get("sku")) if isinstance(item, Mapping) else None)
        if not sku:
            raise ValidationError(f"payload.orderLines[{position}] names no sku", code="bad_body")
        skus[sku] = None
    data: dict[str, object] = {"event_type": str(payload.get("subEventType") or topic), "skus": list(skus)}
    if po:
        data["purchase_order_id"] = po
    if not po and not skus:
        raise ValidationError("payload names no purchase order and no sku", code="bad_body")
    return [StoreEvent(StoreEventKind.STORE_ORDER_PLACED, po or next(iter(skus)), when, data)]


def _statuses(payload: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    top = text(payload.get("status") or payload.get("orderStatus"))
    if top:
        found.append(top.upper())
    for line in _list(payload, "lineItemStatus"):
        for status in line.get("itemStatus") or []:
            if isinstance(status, Mapping) and text(status.get("status")):
                found.append(str(text(status.get("status"))).upper())
    return found


def _tracking(payload: Mapping[str, Any]) -> list[dict[str, str]]:
    tracking: list[dict[str, str]] = []
    for shipment in _list(payload, "shipmentDetails"):
        number = text(shipment.get("trackingNumber") or shipment.get("trackingNo"))
        if not number:
            continue
        entry = {"number": number}
        company = text(shipment.get("carrier") or shipment.get("scac") or shipment.get("carrierName"))
        url = text(
            shipment.get("trackingUrl") or shipment.get("trackingURL") or shipment.get("externalTrackingURL")
        )
        if company:
            entry["company"] = company
        if url:
            entry["url"] = url
        tracking.append(entry)
    return tracking


def _mcs_order(topic: str, payload: Mapping[str, Any], when: datetime | None) -> list[StoreEvent]:
    try:
        order = ref(payload.get("originSystemOrderId") or payload.get("sellerOrderId"), "originSystemOrderId")
    except ValueError as exc:
        raise ValidationError(str(exc), code="bad_body", details={"field": "originSystemOrderId"}) from None
    statuses = _statuses(payload)
    tracking = _tracking(payload)
    data: dict[str, object] = {"event_type": topic}
    if tracking:
        data["tracking"] = tracking
    shipped = any(status in _SHIPPED for status in statuses)
    if topic == "ORDER_SHIPMENT_UPDATE" and (tracking or shipped):
        return [StoreEvent(StoreEventKind.ORDER_FULFILLED, order, when, data)]
    if shipped:
        return [StoreEvent(StoreEventKind.ORDER_FULFILLED, order, when, data)]
    if statuses and all(status in _CANCELLED for status in statuses):
        return [StoreEvent(StoreEventKind.ORDER_CANCELLED, order, when, data)]
    return []


def events(
    topic: str, payload: Mapping[str, Any], when: datetime | None, ship_node: str | None = None
) -> list[StoreEvent]:
    """The store events of a parsed payload; ValidationError naming the bad field."""
    if topic == "INVENTORY_OOS":
        return _stock(topic, payload, when, ship_node)
    if topic in ("OFFER_PUBLISHED", "OFFER_UNPUBLISHED"):
        return [StoreEvent(StoreEventKind.PRODUCT_CHANGED, _sku(payload), when, {"event_type": topic})]
    if topic in ("PO_CREATED", "PO_LINE_AUTOCANCELLED", "ORDER_UPDATES"):
        return _walmart_order(topic, payload, when)
    if topic in ("ORDER_STATUS_UPDATE", "ORDER_SHIPMENT_UPDATE"):
        return _mcs_order(topic, payload, when)
    raise PermanentError(f"Walmart event type {topic!r} is not handled", code="unknown_topic")


def subscription(
    event_type: str,
    resource: str,
    callback_url: str,
    auth: Mapping[str, str],
) -> dict[str, Any]:
    """One entry of `POST /v3/webhooks/subscriptions` `events[]`."""
    return {
        "eventType": event_type,
        "eventVersion": "V1",
        "resourceName": resource,
        "eventUrl": callback_url,
        "status": "ACTIVE",
        "authDetails": dict(auth),
        "headers": {"content-type": "application/json"},
    }


def subscriptions_of(body: object) -> list[Mapping[str, Any]]:
    """The subscriptions of a `GET /v3/webhooks/subscriptions` answer."""
    if not isinstance(body, Mapping):
        return []
    found = body.get("events")
    if found is None:
        found = body.get("subscriptions")
    return [entry for entry in found if isinstance(entry, Mapping)] if isinstance(found, Sequence) else []
