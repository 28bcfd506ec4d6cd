"""Constants of the product-feed adapter: store kind, capabilities, formats and column names."""

from __future__ import annotations

from typing import Final

from connector.domain.ports import MAX_RECORDED_SKIPS, Capability

KIND: Final = "feed"
API_VERSION: Final = "gmc-1"
"""The feed dialect: columns modelled on Google Merchant Center product data."""

CAPABILITIES: Final = frozenset({Capability.CATALOG_FULL, Capability.INVENTORY_READ, Capability.WEBHOOKS})

FORMATS: Final = frozenset({"csv", "tsv", "jsonl", "json"})
EXTENSION_FORMATS: Final[dict[str, str]] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
HTTP_DEFAULT_FORMAT: Final = "csv"
URL_SCHEMES: Final = frozenset({"http", "https"})

DEFAULT_LOCATION: Final = "default"
DEFAULT_ENCODING: Final = "utf-8-sig"
"""UTF-8, with a leading byte-order mark (spreadsheet exports) skipped."""

CONFIG_KEYS: Final = frozenset({"url", "format", "default_currency", "location", "encoding"})
CREDENTIAL_KEYS: Final = frozenset({"username", "password", "token", "webhook_secret", "url_query"})
"""`url_query`: the query string of an http(s) feed URL, kept encrypted with the credentials."""

REQUIRED_COLUMNS: Final = ("id", "title", "price")

MAX_RECORDED_ERRORS: Final = MAX_RECORDED_SKIPS
"""Skipped rows kept with their reason per pass; the count goes on beyond it."""
MAX_VARIANTS_PER_PRODUCT: Final = 500
"""A longer run of one item_group_id is yielded in parts, so memory stays bounded."""
