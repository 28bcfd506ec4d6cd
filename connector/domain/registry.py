"""Adapter registry: finds store adapters through the `storelink.adapters` entry-point group."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, cast

from connector.domain.errors import ValidationError
from connector.domain.ports import Capability, HasConfigCapabilities, HttpOptions, StoreAdapter

logger = logging.getLogger(__name__)

GROUP = "storelink.adapters"


@lru_cache(maxsize=1)
def adapters() -> dict[str, type[StoreAdapter]]:
    """Every installed adapter class by store kind. A broken plug-in is logged and skipped."""
    found: dict[str, type[StoreAdapter]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception:
            logger.exception("adapter failed to load", extra={"entry_point": ep.name})
            continue
        found[ep.name] = cast(type[StoreAdapter], cls)
    return found


def kinds() -> list[str]:
    return sorted(adapters())


def adapter_class(kind: str) -> type[StoreAdapter]:
    try:
        return adapters()[kind]
    except KeyError:
        raise ValidationError(
            f"unknown store kind {kind!r}; installed: {', '.join(kinds()) or 'none'}", code="unknown_kind"
        ) from None


def create_adapter(
    kind: str, config: Mapping[str, Any], credentials: Mapping[str, str], http: HttpOptions
) -> StoreAdapter:
    """Instantiate the adapter for one merchant's store."""
    cls = adapter_class(kind)
    return cls(config, credentials, http)  # type: ignore[call-arg]


def capabilities(kind: str, config: Mapping[str, Any] | None = None) -> frozenset[Capability]:
    """What a store of `kind` can do; with the merchant's `config`, what that merchant's store can do (for
    adapters whose capabilities depend on it)."""
    cls = adapter_class(kind)
    if config is not None and callable(getattr(cls, "config_capabilities", None)):
        return cast(type[HasConfigCapabilities], cls).config_capabilities(config)
    return cls.capabilities


def takes_orders(kind: str, config: Mapping[str, Any] | None = None) -> bool:
    """True when a merchant's store of `kind` (with `config`) accepts orders pushed to it."""
    try:
        return Capability.ORDER_PUSH in capabilities(kind, config)
    except ValidationError:  # the kind's adapter is not installed here
        return False
