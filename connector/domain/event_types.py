"""Every domain event type the core publishes (the `type` of an outbound webhook), named once.

Store topics an adapter reads (a feed's `inventory.updated` push, a store's own `orders/paid`) are the store's
vocabulary, not these, and stay with the adapter.
"""

from __future__ import annotations

from typing import Final

PRODUCT_UPDATED: Final = "product.updated"
PRODUCT_DELETED: Final = "product.deleted"
INVENTORY_UPDATED: Final = "inventory.updated"

ORDER_ACCEPTED: Final = "order.accepted"
ORDER_CONFIRMED: Final = "order.confirmed"
ORDER_REJECTED: Final = "order.rejected"
ORDER_CANCELLED: Final = "order.cancelled"
ORDER_FULFILLED: Final = "order.fulfilled"
ORDER_REFUNDED: Final = "order.refunded"

LIVE_PIN_UPDATED: Final = "live.pin_updated"
LIVE_STOCK_LOW: Final = "live.stock_low"
LIVE_SOLD_OUT: Final = "live.sold_out"

COMMISSION_CREATED: Final = "commission.created"
COMMISSION_APPROVED: Final = "commission.approved"
COMMISSION_REVERSED: Final = "commission.reversed"
COMMISSION_PAID: Final = "commission.paid"
SHOWCASE_UPDATED: Final = "showcase.updated"
SHOWCASE_ITEM_UPDATED: Final = "showcase.item_updated"
SHOWCASE_DELETED: Final = "showcase.deleted"

MERCHANT_UNINSTALLED: Final = "merchant.uninstalled"

ALL: Final[tuple[str, ...]] = (
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
    INVENTORY_UPDATED,
    ORDER_ACCEPTED,
    ORDER_CONFIRMED,
    ORDER_REJECTED,
    ORDER_CANCELLED,
    ORDER_FULFILLED,
    ORDER_REFUNDED,
    LIVE_PIN_UPDATED,
    LIVE_STOCK_LOW,
    LIVE_SOLD_OUT,
    COMMISSION_CREATED,
    COMMISSION_APPROVED,
    COMMISSION_REVERSED,
    COMMISSION_PAID,
    SHOWCASE_UPDATED,
    SHOWCASE_ITEM_UPDATED,
    SHOWCASE_DELETED,
    MERCHANT_UNINSTALLED,
)
"""Every event type, in the order above."""
