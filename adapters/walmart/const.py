"""Constants of the Walmart Marketplace adapter: store kind, capabilities, addresses, API paths and limits."""

from __future__ import annotations

from typing import Final

from connector.domain.ports import Capability

KIND: Final = "walmart"
API_VERSION: Final = "v3"
SERVICE_NAME: Final = "Walmart Marketplace"
"""Sent as `WM_SVC.NAME` on every call."""

CAPABILITIES: Final = frozenset(
    {
        Capability.CATALOG_FULL,
        Capability.INVENTORY_READ,
        Capability.INVENTORY_WRITE,
        Capability.ORDER_PUSH,
        Capability.WEBHOOKS,
        Capability.POLLING,
    }
)
"""What the store kind can do. An instance for a seller not enrolled in Multichannel Solutions has the same
set without ORDER_PUSH (see `WalmartAdapter.capabilities`)."""

BASE_URLS: Final[dict[str, str]] = {
    "production": "https://marketplace.walmartapis.com",
    "sandbox": "https://sandbox.walmartapis.com",
}
DEFAULT_ENVIRONMENT: Final = "production"

# -- API paths -----------------------------------------------------------------------------------------------
TOKEN_PATH: Final = "/v3/token"  # noqa: S105 (a path)
ITEMS_PATH: Final = "/v3/items"
INVENTORY_PATH: Final = "/v3/inventory"
INVENTORIES_PATH: Final = "/v3/inventories"
"""Multi-node inventory: `/v3/inventories/{sku}`."""
FEEDS_PATH: Final = "/v3/feeds"
ORDERS_PATH: Final = "/v3/orders"
MCS_ORDERS_PATH: Final = "/v3/fulfillment/orders-fulfillments"
MCS_STATUS_PATH: Final = "/v3/fulfillment/orders-fulfillments/status"
MCS_CANCEL_PATH: Final = "/v3/fulfillment/orders-fulfillments/cancel"
MCS_CHANNELS_PATH: Final = "/v3/fulfillment/orders-fulfillments/channel-details"
WEBHOOK_SUBSCRIPTIONS_PATH: Final = "/v3/webhooks/subscriptions"

# -- headers -------------------------------------------------------------------------------------------------
ACCESS_TOKEN_HEADER: Final = "WM_SEC.ACCESS_TOKEN"  # noqa: S105 (a header name)
CORRELATION_HEADER: Final = "WM_QOS.CORRELATION_ID"
SERVICE_HEADER: Final = "WM_SVC.NAME"
TOKEN_COUNT_HEADER: Final = "X-Current-Token-Count"  # noqa: S105 (a header name)
REPLENISHMENT_HEADER: Final = "X-Next-Replenishment-Time"

# -- tokens --------------------------------------------------------------------------------------------------
TOKEN_LIFETIME_SECONDS: Final = 900.0
"""What Walmart grants when the answer has no `expires_in`."""
TOKEN_REFRESH_MARGIN_SECONDS: Final = 180.0
"""A token is replaced this long before it expires (cached about 12 of its 15 minutes)."""

# -- Multichannel Solutions (WFS) ----------------------------------------------------------------------------
MCS_MART_ID: Final = "202"
MCS_BU_ID: Final = "0"
SELLER_ORDER_ID_LENGTH: Final = 18
"""`sellerOrderId`: at most 18 characters of `[A-Za-z0-9]`."""
DEFAULT_SELLER_ORDER_PREFIX: Final = "SL"
MAX_SELLER_LINE_ID: Final = 999_999
"""`sellerLineId` is at most 6 characters: lines are numbered 1, 2, ..."""
SHIPPING_METHODS: Final = frozenset({"STANDARD", "EXPEDITED", "RUSH"})
MCS_POLL_SECONDS: Final = 10.0
MCS_REJECTED_STATUSES: Final = frozenset(
    {"REJECTED", "FAILED", "FAIL", "ERROR", "INVALID", "UNFULFILLABLE", "SOURCING_FAILED"}
)
MCS_CANCELLED_STATUSES: Final = frozenset({"CANCELLED", "CANCELED"})
MCS_PENDING_STATUSES: Final = frozenset({"RECEIVED", "PENDING", "IN_PROGRESS", "INPROGRESS", "SUBMITTED"})
"""An order seen in the status endpoint with any other status has been taken by Walmart."""

# -- inventory -----------------------------------------------------------------------------------------------
INVENTORY_SOURCES: Final = frozenset({"sku", "ship_nodes"})
"""`sku`: `GET/PUT /v3/inventory?sku=` (the default or configured ship node); `ship_nodes`:
`/v3/inventories/{sku}`, sellable stock is `availToSellQty` of the configured node, else summed over all."""
DEFAULT_LOCATION: Final = "default"
BULK_INVENTORY_THRESHOLD: Final = 50
"""`set_inventory` with more levels than this sends one bulk feed instead of one PUT per SKU."""
FEEDS_PER_HOUR: Final = 10
"""Bulk inventory feeds Walmart takes per hour and seller."""
FEED_MAX_ITEMS: Final = 10_000
"""Items per inventory feed: well under the 5 MB file limit."""
FEED_POLL_SECONDS: Final = 30.0
FEED_DONE_STATUSES: Final = frozenset({"PROCESSED", "ERROR"})

# -- orders --------------------------------------------------------------------------------------------------
ORDERS_PAGE_LIMIT: Final = 200
ORDERS_WINDOW_DAYS: Final = 7
"""Walmart-originated orders are read in windows of creation dates (one query returns at most 10,000)."""
ORDERS_MAX_AGE_DAYS: Final = 180
SHIP_NODE_TYPES: Final = frozenset({"SellerFulfilled", "WFSFulfilled", "3PLFulfilled"})

# -- catalog -------------------------------------------------------------------------------------------------
ITEMS_PAGE_LIMIT: Final = 200
INVENTORIES_PAGE_LIMIT: Final = 50
"""The most SKUs `GET /v3/inventories` lists in a page."""
MAX_VARIANTS_PER_PRODUCT: Final = 500
"""A longer run of one variant group is yielded in parts, so memory stays bounded."""

# -- webhooks ------------------------------------------------------------------------------------------------
WEBHOOK_AUTH_METHODS: Final = frozenset({"HMAC", "BASIC_AUTH"})
DEFAULT_WEBHOOK_AUTH_HEADER: Final = "Authorization"
"""The header Walmart puts the delivery's HMAC (or basic credentials) in: the subscription's `authHeaderName`."""
WEBHOOK_EVENTS: Final[tuple[tuple[str, str], ...]] = (
    ("INVENTORY_OOS", "INVENTORY"),
    ("OFFER_PUBLISHED", "ITEM"),
    ("OFFER_UNPUBLISHED", "ITEM"),
    ("PO_CREATED", "ORDER"),
    ("PO_LINE_AUTOCANCELLED", "ORDER"),
)
"""(eventType, resourceName) subscribed for every seller."""
MCS_WEBHOOK_EVENTS: Final[tuple[tuple[str, str], ...]] = (
    ("ORDER_STATUS_UPDATE", "ORDER"),
    ("ORDER_SHIPMENT_UPDATE", "ORDER"),
)
"""Subscribed for sellers enrolled in Multichannel Solutions."""
TOPICS: Final = frozenset(event for event, _ in WEBHOOK_EVENTS + MCS_WEBHOOK_EVENTS) | {"ORDER_UPDATES"}

CONFIG_KEYS: Final = frozenset(
    {
        "seller_id",
        "client_id",
        "environment",
        "base_url",
        "location",
        "inventory_source",
        "catalog_stock",
        "currency",
        "bulk_inventory_threshold",
        "feeds_per_hour",
        "feed_poll_seconds",
        "mcs_enrolled",
        "order_channel_id",
        "order_channel_name",
        "mcs_poll_seconds",
        "shipping_method",
        "seller_order_prefix",
        "webhook_auth",
        "webhook_auth_header",
        "send_basic_auth",
        "service_name",
        "max_pacing_seconds",
    }
)
CREDENTIAL_KEYS: Final = frozenset({"client_id", "client_secret", "webhook_username", "webhook_password"})
