"""Webhook subscriptions of the emulated shop: added, removed, and matched (topic and filter) to a change."""

from __future__ import annotations

from typing import Any

from connector.sandbox.shopify.models import WebhookSubscription
from connector.sandbox.shopify.search import PayloadFields, search
from connector.sandbox.shopify.state import StoreState, number_of


class SubscriptionsMixin(StoreState):
    """The shop's webhook subscriptions."""

    def add_subscription(self, topic: str, uri: str, **options: Any) -> WebhookSubscription:
        with self.lock:
            when = self.now()
            subscription = WebhookSubscription(
                self.next_id("WebhookSubscription"), topic, uri, when, when, **options
            )
            self.subscriptions[subscription.legacy_resource_id] = subscription
            return subscription

    def remove_subscription(self, subscription_id: int | str) -> WebhookSubscription | None:
        with self.lock:
            return self.subscriptions.pop(number_of(subscription_id, "WebhookSubscription"), None)

    def subscribers(self, topic: str, body: dict[str, Any] | None = None) -> list[WebhookSubscription]:
        """Subscriptions to `topic` whose `filter` (Shopify search syntax over the body) lets `body` through."""
        enum = topic.upper().replace("/", "_")
        with self.lock:
            found = [s for s in self.subscriptions.values() if s.topic == enum]
        if body is None:
            return found
        return [s for s in found if not s.filter or search(s.filter, PayloadFields())(body)]
