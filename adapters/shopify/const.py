"""Constants of the Shopify adapter: store kind, API version, capabilities, scopes, topics and limits."""

from __future__ import annotations

from typing import Final

from connector.domain.ports import Capability

KIND: Final = "shopify"
API_VERSION: Final = "2026-10"
"""Admin GraphQL API version every request and webhook subscription is pinned to."""

CAPABILITIES: Final = frozenset(
    {
        Capability.CATALOG_FULL,
        Capability.CATALOG_INCREMENTAL,
        Capability.BULK_EXPORT,
        Capability.INVENTORY_READ,
        Capability.INVENTORY_WRITE,
        Capability.ORDER_PUSH,
        Capability.WEBHOOKS,
    }
)

REQUIRED_SCOPES: Final = frozenset(
    {"read_products", "read_inventory", "write_inventory", "read_locations", "read_orders", "write_orders"}
)
"""Access scopes the connector needs; a write scope also grants the matching read."""

WEBHOOK_TOPICS: Final = (
    "products/create",
    "products/update",
    "products/delete",
    "inventory_levels/update",
    "orders/updated",
    "orders/fulfilled",
    "orders/cancelled",
    "refunds/create",
    "app/uninstalled",
    "bulk_operations/finish",
)
"""Topics subscribed per shop (`webhookSubscriptionCreate`)."""

COMPLIANCE_TOPICS: Final = ("customers/data_request", "customers/redact", "shop/redact")
"""Mandatory privacy topics: configured in the app's TOML, never through the Admin API."""

TOPICS: Final = frozenset(WEBHOOK_TOPICS) | frozenset(COMPLIANCE_TOPICS)

SHOP_DOMAIN_PATTERN: Final = r"[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com"

INVENTORY_BEHAVIOURS: Final = frozenset({"BYPASS", "DECREMENT_IGNORING_POLICY", "DECREMENT_OBEYING_POLICY"})
DEFAULT_INVENTORY_BEHAVIOUR: Final = "DECREMENT_OBEYING_POLICY"
CANCEL_REASONS: Final = frozenset({"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"})

CONFIG_KEYS: Final = frozenset(
    {
        "shop",
        "location",
        "inventory_behaviour",
        "base_url",
        "bulk",
        "source_name",
        "order_tags",
        "test_orders",
    }
)
CREDENTIAL_KEYS: Final = frozenset(
    {
        "access_token",
        "refresh_token",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "client_id",
        "client_secret",
        "old_client_secret",
        "scopes",
    }
)

ORDER_TAG: Final = "storelink"
ORDER_KEY_TAG_PREFIX: Final = "storelink-"
CREATOR_TAG_PREFIX: Final = "creator:"
"""Tag of an order a creator sold (a Shopify tag holds at most 40 characters: longer refs are cut)."""
TAG_MAX_LENGTH: Final = 40
ATTRIBUTE_PREFIX: Final = "storelink_"
"""Custom attributes (`note_attributes`) of an attributed order: storelink_creator, storelink_attributed_via,
storelink_link_code, storelink_click_id."""
"""Orders also carry `storelink-<digest of the idempotency key>` (tags are at most 40 characters)."""
TRANSACTION_GATEWAY: Final = "storelink"

INCREMENTAL_OVERLAP_SECONDS: Final = 300
"""An incremental pass starts this long before the watermark: search indexing lags behind writes."""

PRODUCTS_PER_PAGE: Final = 8
VARIANTS_PER_PAGE: Final = 25
"""Variants read with each product on a catalog page; the rest are read by PRODUCT_VARIANTS_PAGE."""
MAX_MEDIA: Final = 10
"""Images kept per product, in store order, the same for bulk and paged reads."""
MAX_COLLECTIONS: Final = 15
"""Collections kept per product, in store order, the same for bulk and paged reads (a catalog page asks for
this many with each product: with 8 products, 25 variants and 10 images each, it stays under Shopify's
single-query cost cap)."""
INVENTORY_BATCH_AT_LOCATION: Final = 100
INVENTORY_BATCH_ALL_LOCATIONS: Final = 5
LEVELS_PER_ITEM: Final = 50
"""Locations read per inventory item when stock is summed over all of them."""
"""Variants per inventory read: fewer when every location's level is read. Page sizes keep every query under
Shopify's single-query cost cap of 1,000 points."""
MAX_BUFFERED_VARIANTS: Final = 20_000
"""Variant lines a bulk read holds before it yields the oldest products in parts (see bulk_mapper.BulkAssembler)."""

BULK_POLL_INITIAL: Final = 1.0
BULK_POLL_MAX: Final = 15.0
BULK_TIMEOUT_SECONDS: Final = 6 * 3600.0
TOKEN_REFRESH_MARGIN_SECONDS: Final = 60.0
