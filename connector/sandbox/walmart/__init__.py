"""An emulator of the Walmart Marketplace US API v3 over one in-memory seller account: OAuth client-credentials
tokens, items with cursor paging, single- and multi-node inventory, bulk inventory feeds, Multichannel
Solutions fulfilment orders, Walmart-originated orders, notification subscriptions with signed deliveries,
per-endpoint token-bucket throttling and injectable faults. Wire formats are listed in the app module."""

from connector.sandbox.walmart.app import (
    ACCESS_TOKEN,
    CORRELATION_ID,
    SERVICE_NAME,
    Server,
    WalmartEmulator,
    serve,
)
from connector.sandbox.walmart.deliveries import Attempt, WebhookFault, sign
from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.faults import ApiFault
from connector.sandbox.walmart.orders import Order
from connector.sandbox.walmart.store import Item, Store
from connector.sandbox.walmart.throttle import RateLimit

__all__ = [
    "ACCESS_TOKEN",
    "CORRELATION_ID",
    "SERVICE_NAME",
    "ApiFault",
    "Attempt",
    "Item",
    "Order",
    "RateLimit",
    "Server",
    "Store",
    "WalmartEmulator",
    "WalmartError",
    "WebhookFault",
    "serve",
    "sign",
]
