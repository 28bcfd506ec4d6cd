"""What every part of the Shopify adapter shares: the shop's validated config, the state that
`ShopifyAdapter.__init__` sets up, and the shop's currency."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from adapters.shopify import const, mapper, oauth, queries
from adapters.shopify.client import ShopifyClient
from connector.domain.errors import PermanentError, ValidationError
from connector.domain.ports import BulkSignal, CatalogReport, CredentialsGuard, HttpOptions

_MAX_TEXT: Final = 200


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
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


def _location(value: str | None) -> str | None:
    if value is None:
        return None
    if value.isdigit():
        return mapper.gid("Location", value)
    if mapper.gid_type(value) != "Location" or not value.rsplit("/", 1)[-1].isdigit():
        raise ValidationError(
            f"location {value!r} is not a Location GID (gid://shopify/Location/<id>) or id",
            details={"field": "location"},
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


class ShopifyBase:
    """The config and state the Shopify adapter's parts (tokens, install, catalog, inventory, orders) work on."""

    config: dict[str, Any]
    client: ShopifyClient
    _shop: str
    _location: str | None
    _base_url: str | None
    _http: HttpOptions
    _session: requests.Session
    _credentials: dict[str, str]
    _tokens: oauth.TokenSet | None
    _secrets: list[str]
    _currency: str | None
    _report: CatalogReport
    on_tokens_refreshed: Callable[[dict[str, str]], None] | None
    refresh_guard: CredentialsGuard | None
    sleep: Callable[[float], None]
    bulk_signal: BulkSignal | None
    """Set by the core: waits for `bulk_operations/finish` between polls (see AwaitsBulkSignal)."""

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized config, or raise ValidationError naming the field and the problem."""
        if not isinstance(config, Mapping):
            raise ValidationError("shopify config must be an object")
        unknown = sorted(str(key) for key in config if key not in const.CONFIG_KEYS)
        if unknown:
            raise ValidationError(
                f"unknown shopify config key(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(const.CONFIG_KEYS))}",
                details={"fields": unknown},
            )
        shop = (_text(config, "shop") or "").lower()
        if not oauth.valid_shop_domain(shop):
            raise ValidationError(
                f"shop {shop!r} is not a <name>.myshopify.com domain" if shop else "shop is required",
                details={"field": "shop"},
            )
        behaviour = (_text(config, "inventory_behaviour") or const.DEFAULT_INVENTORY_BEHAVIOUR).upper()
        if behaviour not in const.INVENTORY_BEHAVIOURS:
            raise ValidationError(
                f"inventory_behaviour {behaviour!r} is not one of {', '.join(sorted(const.INVENTORY_BEHAVIOURS))}",
                details={"field": "inventory_behaviour"},
            )
        tags = config.get("order_tags") or []
        if not isinstance(tags, list | tuple) or not all(
            isinstance(tag, str) and 0 < len(tag.strip()) <= 40 for tag in tags
        ):
            raise ValidationError(
                "order_tags must be a list of tags of 1 to 40 characters", details={"field": "order_tags"}
            )
        return {
            "shop": shop,
            "location": _location(_text(config, "location")),
            "inventory_behaviour": behaviour,
            "base_url": _base_url(_text(config, "base_url")),
            "bulk": _flag(config, "bulk", True),
            "source_name": _text(config, "source_name"),
            "order_tags": [tag.strip() for tag in tags],
            "test_orders": _flag(config, "test_orders", False),
        }

    @classmethod
    def store_ref(cls, config: Mapping[str, Any]) -> str:
        """The shop's myshopify.com domain, lower-cased."""
        shop: str = cls.validate_config(config)["shop"]
        return shop

    def currency(self) -> str:
        """The shop's currency (read once per adapter)."""
        if self._currency is None:
            shop = self.client.execute(queries.SHOP).get("shop") or {}
            code = shop.get("currencyCode") if isinstance(shop, dict) else None
            if not isinstance(code, str) or len(code) != 3:
                raise PermanentError(f"{self._shop} reported no currency", code="graphql_no_data")
            self._currency = code
        return self._currency
