"""What every part of the Walmart adapter shares: the seller's validated config, the state that
`WalmartAdapter.__init__` sets up, and the status polls' pacing."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from adapters.walmart import const
from adapters.walmart.client import WalmartClient
from connector.domain.errors import ValidationError
from connector.domain.ports import CatalogReport

_MAX_TEXT: Final = 200
POLL_INITIAL: Final = 0.5
POLL_MAX: Final = 3.0
"""A status poll waits POLL_INITIAL seconds first, doubling up to POLL_MAX."""


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValidationError(f"{key} must be text, got {type(value).__name__}", details={"field": key})
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise ValidationError(f"{key} is longer than {_MAX_TEXT} characters", details={"field": key})
    return value or None


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ValidationError(f"{key} must be true or false", details={"field": key})
    return value


def _number(config: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValidationError(f"{key} must be a number from {low:g} to {high:g}", details={"field": key})
    return float(value)


def _whole(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{key} must be a whole number from {low} to {high}", details={"field": key})
    return value


def _choice(config: Mapping[str, Any], key: str, default: str, allowed: Collection[str], upper: bool) -> str:
    value = _text(config, key) or default
    value = value.upper() if upper else value.lower()
    if value not in allowed:
        raise ValidationError(
            f"{key} {value!r} is not one of {', '.join(sorted(allowed))}", details={"field": key}
        )
    return value


def _base_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(f"base_url {value!r} is not an http(s) URL", details={"field": "base_url"})
    if parts.username or parts.password:
        raise ValidationError("base_url must not embed credentials", details={"field": "base_url"})
    return value.rstrip("/")


class WalmartBase:
    """The config and state the Walmart adapter's parts (catalog, inventory, orders, Multichannel) work on."""

    config: dict[str, Any]
    client: WalmartClient
    channel_id: str | None
    _credentials: dict[str, str]
    _client_secret: str
    _location: str | None
    _currency: str
    _sleep: Callable[[float], None]
    _monotonic: Callable[[], float]
    _wall: Callable[[], float]
    _session: requests.Session
    _feeds_sent: list[float]
    _report: CatalogReport
    _stock: dict[str, int | None] | None
    """Every SKU's stock read up front by a catalog pass (from the multi-node listing), else None."""

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized config, or raise ValidationError naming the field and the problem."""
        if not isinstance(config, Mapping):
            raise ValidationError("walmart config must be an object")
        unknown = sorted(str(key) for key in config if key not in const.CONFIG_KEYS)
        if unknown:
            raise ValidationError(
                f"unknown walmart config key(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(const.CONFIG_KEYS))}",
                details={"fields": unknown},
            )
        seller_id = _text(config, "seller_id")
        client_id = _text(config, "client_id")
        if not seller_id and not client_id:
            raise ValidationError(
                "seller_id or client_id is required: it names the Walmart seller",
                details={"field": "seller_id"},
            )
        environment = _choice(config, "environment", const.DEFAULT_ENVIRONMENT, const.BASE_URLS, upper=False)
        base_url = _base_url(_text(config, "base_url"))
        currency = (_text(config, "currency") or "USD").upper()
        if len(currency) != 3 or not currency.isalpha():
            raise ValidationError(
                f"currency {currency!r} is not an ISO 4217 code", details={"field": "currency"}
            )
        prefix = _text(config, "seller_order_prefix") or const.DEFAULT_SELLER_ORDER_PREFIX
        if not prefix.isascii() or not prefix.isalnum() or len(prefix) > 6:
            raise ValidationError(
                "seller_order_prefix must be 1 to 6 letters or digits",
                details={"field": "seller_order_prefix"},
            )
        return {
            "seller_id": seller_id,
            "client_id": client_id,
            "environment": environment,
            "base_url": base_url or const.BASE_URLS[environment],
            "location": _text(config, "location"),
            "inventory_source": _choice(
                config, "inventory_source", "ship_nodes", const.INVENTORY_SOURCES, upper=False
            ),
            "catalog_stock": _flag(config, "catalog_stock", True),
            "currency": currency,
            "bulk_inventory_threshold": _whole(
                config, "bulk_inventory_threshold", const.BULK_INVENTORY_THRESHOLD, 1, 100_000
            ),
            "feeds_per_hour": _whole(config, "feeds_per_hour", const.FEEDS_PER_HOUR, 1, 1000),
            "feed_poll_seconds": _number(config, "feed_poll_seconds", const.FEED_POLL_SECONDS, 0, 3600),
            "mcs_enrolled": _flag(config, "mcs_enrolled", False),
            "order_channel_id": _text(config, "order_channel_id"),
            "order_channel_name": _text(config, "order_channel_name"),
            "mcs_poll_seconds": _number(config, "mcs_poll_seconds", const.MCS_POLL_SECONDS, 0, 300),
            "shipping_method": _choice(
                config, "shipping_method", "STANDARD", const.SHIPPING_METHODS, upper=True
            ),
            "seller_order_prefix": prefix.upper(),
            "webhook_auth": _choice(config, "webhook_auth", "HMAC", const.WEBHOOK_AUTH_METHODS, upper=True),
            "webhook_auth_header": _text(config, "webhook_auth_header") or const.DEFAULT_WEBHOOK_AUTH_HEADER,
            "send_basic_auth": _flag(config, "send_basic_auth", False),
            "service_name": _text(config, "service_name") or const.SERVICE_NAME,
            "max_pacing_seconds": _number(config, "max_pacing_seconds", 60.0, 0, 3600),
        }

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        """The seller id, else the client id."""
        normalized = cls.validate_config(config)
        return str(normalized["seller_id"] or normalized["client_id"])
