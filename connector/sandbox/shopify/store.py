"""The emulated shop: one `Store` composing its in-memory state with each kind of change (catalog, inventory,
orders with fulfilments, refunds and cancellations, webhook subscriptions), each change announced to listeners
as a webhook topic and REST body. The names other modules use are re-exported here."""

from __future__ import annotations

from connector.sandbox.shopify.catalog import CatalogMixin
from connector.sandbox.shopify.inventory import MAX_QUANTITY, SET_REASONS
from connector.sandbox.shopify.orders import OrdersMixin
from connector.sandbox.shopify.search import (
    ITEM_FILTERS,
    LOCATION_FILTERS,
    ORDER_FILTERS,
    PRODUCT_FILTERS,
    VARIANT_FILTERS,
    PayloadFields,
    dig,
    search,
)
from connector.sandbox.shopify.state import Context, Failure, Listener, Shop
from connector.sandbox.shopify.subscriptions import SubscriptionsMixin

__all__ = [
    "ITEM_FILTERS",
    "LOCATION_FILTERS",
    "MAX_QUANTITY",
    "ORDER_FILTERS",
    "PRODUCT_FILTERS",
    "SET_REASONS",
    "VARIANT_FILTERS",
    "Context",
    "Failure",
    "Listener",
    "PayloadFields",
    "Shop",
    "Store",
    "dig",
    "search",
]


class Store(CatalogMixin, OrdersMixin, SubscriptionsMixin):
    """One shop's state. Every method is thread-safe; changes are announced to `listeners`."""
