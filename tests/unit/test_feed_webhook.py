"""Feed pushes: Standard Webhooks verification with the merchant's secret, envelope and parsing rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from adapters.feed import webhook
from adapters.feed.adapter import FeedAdapter
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.ports import HttpOptions
from connector.domain.store_events import StoreEventKind
from connector.sandbox.feed_push import FeedPusher, new_secret


@pytest.fixture
def secret() -> str:
    return new_secret()


def adapter(tmp_path, secret: str | None) -> FeedAdapter:
    feed = tmp_path / "f.csv"
    feed.write_text("id,title,price\nA,a,1.00 USD\n")
    return FeedAdapter(
        {"url": str(feed)}, {"webhook_secret": secret} if secret else {}, HttpOptions(allow_files=True)
    )


def test_signed_deliveries_verify_only_with_the_merchants_secret(tmp_path, secret):
    delivery = FeedPusher("/", secret).inventory([("A", 3)])
    assert adapter(tmp_path, secret).verify_webhook(delivery.headers, delivery.body)
    assert not adapter(tmp_path, new_secret()).verify_webhook(delivery.headers, delivery.body)
    assert not adapter(tmp_path, None).verify_webhook(delivery.headers, delivery.body)
    assert not adapter(tmp_path, secret).verify_webhook(delivery.headers, delivery.body + b" ")
    old = FeedPusher("/", secret).delivery(
        "inventory.updated",
        {"items": [{"id": "A", "quantity": 1}]},
        signed_at=datetime.now(UTC) - timedelta(hours=1),
    )
    assert not adapter(tmp_path, secret).verify_webhook(old.headers, old.body)  # outside the 5 minute window


def test_the_signature_is_the_standard_one(secret):
    delivery = FeedPusher("/", secret).inventory([("A", 3)])
    assert Webhook(secret).verify(delivery.body, delivery.headers)["type"] == "inventory.updated"


def test_envelope_carries_id_topic_and_store_time(secret):
    at = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    delivery = FeedPusher("/", secret).inventory([("A", 3)], at=at, webhook_id="msg_1")
    envelope = webhook.envelope(delivery.headers, delivery.body)
    assert (envelope.delivery_id, envelope.topic, envelope.triggered_at) == ("msg_1", "inventory.updated", at)


def test_parse_gives_one_event_per_item_with_the_item_time():
    body = json.dumps(
        {
            "type": "inventory.updated",
            "timestamp": "2026-05-01T08:00:00Z",
            "data": {
                "items": [
                    {"id": "A", "quantity": 3, "updated_at": "2026-05-01T07:00:00+00:00"},
                    {"id": 42, "quantity": None, "location": " back "},
                ]
            },
        }
    ).encode()
    first, second = webhook.parse("inventory.updated", body)
    assert first.kind is StoreEventKind.INVENTORY_CHANGED
    assert (first.external_id, first.data, first.occurred_at) == (
        "A",
        {"quantity": 3},
        datetime(2026, 5, 1, 7, tzinfo=UTC),
    )
    assert (second.external_id, second.data) == ("42", {"quantity": None, "location": "back"})
    assert second.occurred_at == datetime(2026, 5, 1, 8, tzinfo=UTC)
    (deleted,) = webhook.parse("product.deleted", b'{"type": "product.deleted", "data": {"id": "P1"}}')
    assert (deleted.kind, deleted.external_id) == (StoreEventKind.PRODUCT_DELETED, "P1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"items": "A"}, "data.items"),
        ({"items": [{"id": "", "quantity": 1}]}, "data.items[0].id"),
        ({"items": [{"id": "A", "quantity": 1.5}]}, "data.items[0].quantity"),
        ({"items": [{"id": "A", "quantity": True}]}, "data.items[0].quantity"),
        ({"items": [{"id": "A", "quantity": 1, "updated_at": "yesterday"}]}, "updated_at"),
        ({"items": [{"id": "A", "quantity": 1}] * (webhook.MAX_ITEMS + 1)}, "more than"),
    ],
)
def test_bad_items_are_named(data, message):
    body = json.dumps({"type": "inventory.updated", "data": data}).encode()
    with pytest.raises(ValidationError) as caught:
        webhook.parse("inventory.updated", body)
    assert message in caught.value.message


def test_unknown_topics_and_missing_ids_are_refused(secret):
    pusher = FeedPusher("/", secret)
    with pytest.raises(ValidationError) as caught:
        webhook.envelope(
            pusher.delivery("orders/create", {}).headers, pusher.delivery("orders/create", {}).body
        )
    assert caught.value.code == "unknown_topic"
    delivery = pusher.inventory([("A", 1)])
    with pytest.raises(ValidationError):
        webhook.envelope({k: v for k, v in delivery.headers.items() if k != "webhook-id"}, delivery.body)
    with pytest.raises(PermanentError):
        webhook.parse("orders/create", delivery.body)
