"""An emulator of Shopify's Admin API (version 2026-10) over an in-memory shop: GraphQL executed against the
real schema with Shopify's cost throttle, bulk operations, OAuth with expiring tokens, signed webhooks and
injectable faults."""

from connector.sandbox.shopify.app import GRAPHQL_PATH, Server, ShopifyEmulator, serve
from connector.sandbox.shopify.deliveries import Attempt, WebhookFault, sign
from connector.sandbox.shopify.faults import ApiFault
from connector.sandbox.shopify.oauth import App, query_hmac
from connector.sandbox.shopify.schema import API_VERSION, load_schema, validate_document
from connector.sandbox.shopify.store import Store

__all__ = [
    "API_VERSION",
    "GRAPHQL_PATH",
    "ApiFault",
    "App",
    "Attempt",
    "Server",
    "ShopifyEmulator",
    "Store",
    "WebhookFault",
    "load_schema",
    "query_hmac",
    "serve",
    "sign",
    "validate_document",
]
