"""The Shopify adapter's stock: `available` levels read per variant or per inventory item, and set with
`inventorySetQuantities` (compare-and-swap, idempotency key)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from adapters.shopify import const, mapper, queries
from adapters.shopify.base import ShopifyBase
from connector.domain.catalog import InventoryLevel
from connector.domain.errors import PermanentError, RetryableError, ValidationError

logger = logging.getLogger(__name__)
DEFAULT_LOCATION: Final = "default"
"""The location ref of stock summed over every location (the core's default home location)."""
_STALE_ATTEMPTS: Final = 3


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ShopifyInventory(ShopifyBase):
    """Inventory reads and writes of `ShopifyAdapter` (mixed into it)."""

    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]:
        """`available` stock of the given variants (at the configured location, else summed over all), in
        the order asked; unknown variants are left out."""
        wanted = [ref for ref in dict.fromkeys(variant_refs) if mapper.gid_type(ref) == "ProductVariant"]
        found: dict[str, InventoryLevel] = {}
        location = self._location
        size = const.INVENTORY_BATCH_AT_LOCATION if location else const.INVENTORY_BATCH_ALL_LOCATIONS
        for chunk in _chunks(wanted, size):
            if location:
                data = self.client.execute(
                    queries.INVENTORY_AT_LOCATION, {"ids": list(chunk), "locationId": location}
                )
            else:
                data = self.client.execute(queries.INVENTORY_ALL_LOCATIONS, {"ids": list(chunk)})
            for node in data.get("nodes") or []:
                if not isinstance(node, dict) or not isinstance(node.get("id"), str):
                    continue
                try:
                    level = (
                        mapper.level_at_location(node, location)
                        if location
                        else mapper.summed_level(node, DEFAULT_LOCATION)
                    )
                except ValueError as exc:
                    logger.warning(
                        "unreadable inventory level", extra={"variant": node["id"], "error": str(exc)}
                    )
                    continue
                found[level.variant_external_id] = level
        return [found[ref] for ref in wanted if ref in found]

    def _current_stock(self, variant_refs: Sequence[str], location: str) -> dict[str, tuple[str, int | None]]:
        """(inventory item GID, available) of each variant at `location`."""
        found: dict[str, tuple[str, int | None]] = {}
        for chunk in _chunks(list(dict.fromkeys(variant_refs)), const.INVENTORY_BATCH_AT_LOCATION):
            data = self.client.execute(
                queries.INVENTORY_AT_LOCATION, {"ids": list(chunk), "locationId": location}
            )
            for node in data.get("nodes") or []:
                if not isinstance(node, dict):
                    continue
                item = node.get("inventoryItem")
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                level = mapper.level_at_location(node, location)
                found[str(node["id"])] = (str(item["id"]), level.available)
        return found

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None:
        """Set `available` stock with `inventorySetQuantities`, compare-and-swap against the stock read just
        before (re-read and retried when it changed in between) and an idempotency key."""
        if not levels:
            return
        by_location: dict[str, dict[str, int]] = {}
        for level in levels:
            if level.available is None:
                raise ValidationError(f"variant {level.variant_external_id}: stock to set is missing")
            location = (
                level.location_ref if mapper.gid_type(level.location_ref) == "Location" else self._location
            )
            if location is None:
                raise PermanentError(
                    "inventory writes need a location: set `location` in the shop config", code="no_location"
                )
            by_location.setdefault(location, {})[level.variant_external_id] = max(0, level.available)
        for location, wanted in by_location.items():
            for attempt in range(1, _STALE_ATTEMPTS + 1):
                try:
                    self._set_at(location, wanted)
                    break
                except RetryableError as exc:
                    if exc.code != "change_from_quantity_stale" or attempt == _STALE_ATTEMPTS:
                        raise
                    logger.info("stock changed while setting it, reading again", extra={"shop": self._shop})

    def _set_at(self, location: str, wanted: Mapping[str, int]) -> None:
        current = self._current_stock(list(wanted), location)
        missing = sorted(set(wanted) - set(current))
        if missing:
            raise PermanentError(
                f"unknown variant(s) {', '.join(missing[:5])} in {self._shop}", code="not_found"
            )
        changes = [
            (current[ref][0], location, amount, current[ref][1])
            for ref, amount in wanted.items()
            if current[ref][1] != amount
        ]
        for start in range(0, len(changes), 250):
            chunk = changes[start : start + 250]
            key = mapper.idempotency_key("inventorySetQuantities", self._shop, chunk)
            variables = {"input": mapper.set_quantities_input(chunk), "idempotencyKey": key}
            self.client.mutate(queries.INVENTORY_SET, variables, "inventorySetQuantities")

    def inventory_totals(self, inventory_item_refs: Sequence[str]) -> dict[str, int | None]:
        """`available` stock of each inventory item summed over every location (None when not tracked),
        read in batches; unknown items are left out. For merchants that sell the sum of all locations,
        whose webhooks name one location at a time."""
        wanted = [
            ref for ref in dict.fromkeys(inventory_item_refs) if mapper.gid_type(ref) == "InventoryItem"
        ]
        found: dict[str, int | None] = {}
        for chunk in _chunks(wanted, const.INVENTORY_BATCH_ALL_LOCATIONS):
            data = self.client.execute(queries.INVENTORY_ITEM_TOTALS, {"ids": list(chunk)})
            for node in data.get("nodes") or []:
                if not isinstance(node, dict) or not isinstance(node.get("id"), str):
                    continue
                try:
                    found[node["id"]] = mapper.summed_level(node, DEFAULT_LOCATION).available
                except ValueError as exc:
                    logger.warning("unreadable inventory item", extra={"item": node["id"], "error": str(exc)})
        return found
