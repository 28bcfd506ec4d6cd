"""Inbound deliveries for feed stores: stock and product changes pushed between feed fetches.

A feed store's own system may push changes to `/webhooks/feed/<merchant id>`, signed as Standard Webhooks
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the merchant's `webhook_secret` credential
(`whsec_…`). The body is `{"type": ..., "timestamp": ..., "data": {...}}`:

- `inventory.updated`: `data.items` is a list of `{"id", "quantity", "location"?, "updated_at"?}` where `id`
  is the feed row's `id` (the variant) and `quantity` an integer, or null for untracked stock;
- `product.updated`: `data.id` names a changed product (`item_group_id`, or `id` of a single-row product);
  the feed is fetched again to read it;
- `product.deleted`: `data.id` names a product removed from the store.

An item's `updated_at` (else the body's `timestamp`) is the store time that orders and guards changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connector.domain.errors import PermanentError, ValidationError
from connector.domain.ports import WebhookEnvelope
from connector.domain.store_events import StoreEvent, StoreEventKind

TOPICS: Final = frozenset({"inventory.updated", "product.updated", "product.deleted"})
MAX_ITEMS: Final = 1000
"""Items one `inventory.updated` delivery may carry."""
MAX_ID_CHARS: Final = 255


def verifier(secret: str | None) -> Webhook | None:
    """The verifier for a `webhook_secret` credential; None when there is none or it is not a whsec_ key
    (then nothing verifies, and the merchant's deliveries are refused with 401)."""
    if not secret:
        return None
    try:
        return Webhook(secret)
    except (ValueError, TypeError, RuntimeError):
        return None


def verify(checker: Webhook | None, headers: Mapping[str, str], raw_body: bytes) -> bool:
    """Standard Webhooks verification (constant-time, timestamp within five minutes); False, never raises."""
    if checker is None:
        return False
    try:
        checker.verify(raw_body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError, TypeError):
        return False
    return True


def _body(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}", code="bad_json") from None
    except RecursionError:
        raise ValidationError("body is nested too deeply to read", code="too_deep") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", code="bad_body")
    return body


def _time(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be an ISO 8601 string", code="bad_body")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{field} {value!r} is not an ISO 8601 time", code="bad_body") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def envelope(headers: Mapping[str, str], raw_body: bytes) -> WebhookEnvelope:
    """The delivery id is `webhook-id`; the topic is the body's `type`; its time the body's `timestamp`."""
    delivery_id = headers.get("webhook-id", "").strip()
    if not delivery_id or len(delivery_id) > MAX_ID_CHARS:
        raise ValidationError("webhook-id header is missing or too long", code="bad_headers")
    body = _body(raw_body)
    topic = body.get("type")
    if not isinstance(topic, str) or not topic:
        raise ValidationError("body has no type", code="bad_body")
    if topic not in TOPICS:
        raise ValidationError(
            f"type {topic!r} is not one of {', '.join(sorted(TOPICS))}", code="unknown_topic"
        )
    triggered_at = _time(body.get("timestamp"), "timestamp")
    if triggered_at is None:
        stamp = headers.get("webhook-timestamp", "")
        triggered_at = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None
    _events(topic, body, triggered_at)  # malformed data is refused at the door, not found in a job
    return WebhookEnvelope(delivery_id=delivery_id, topic=topic, triggered_at=triggered_at)


def _ref(value: object, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise ValidationError(f"{field} must be a non-empty id of at most {MAX_ID_CHARS} characters")
    return value.strip()


def parse(topic: str, raw_body: bytes, triggered_at: datetime | None = None) -> list[StoreEvent]:
    """The store events of one delivery, or ValidationError naming the bad field."""
    if topic not in TOPICS:
        raise PermanentError(f"feed stores send no {topic!r} deliveries", code="unknown_topic")
    return _events(topic, _body(raw_body), triggered_at)


def _events(topic: str, body: dict[str, Any], triggered_at: datetime | None) -> list[StoreEvent]:
    when = _time(body.get("timestamp"), "timestamp") or triggered_at
    data = body.get("data")
    if not isinstance(data, dict):
        raise ValidationError("data must be an object", code="bad_body")
    if topic == "inventory.updated":
        items = data.get("items")
        if not isinstance(items, list) or not items:
            raise ValidationError("data.items must be a non-empty list", code="bad_body")
        if len(items) > MAX_ITEMS:
            raise ValidationError(f"data.items holds more than {MAX_ITEMS} items", code="bad_body")
        found: list[StoreEvent] = []
        for n, item in enumerate(items):
            where = f"data.items[{n}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where} must be an object", code="bad_body")
            quantity = item.get("quantity")
            if quantity is not None and (
                not isinstance(quantity, int) or isinstance(quantity, bool) or abs(quantity) > 10**9
            ):
                raise ValidationError(f"{where}.quantity must be an integer or null", code="bad_body")
            location = item.get("location")
            if location is not None and (not isinstance(location, str) or not location.strip()):
                raise ValidationError(f"{where}.location must be a non-empty string", code="bad_body")
            data_out: dict[str, object] = {"quantity": quantity}
            if location is not None:
                data_out["location"] = location.strip()
            found.append(
                StoreEvent(
                    StoreEventKind.INVENTORY_CHANGED,
                    _ref(item.get("id"), f"{where}.id"),
                    _time(item.get("updated_at"), f"{where}.updated_at") or when,
                    data_out,
                )
            )
        return found
    kind = StoreEventKind.PRODUCT_CHANGED if topic == "product.updated" else StoreEventKind.PRODUCT_DELETED
    return [StoreEvent(kind, _ref(data.get("id"), "data.id"), when)]
