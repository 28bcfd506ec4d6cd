"""Inventory changes of the emulated shop: levels per item and location, the quantity states kept in balance,
and the idempotent `inventorySetQuantities` / `inventoryAdjustQuantities` mutations with Shopify's checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import orjson

from connector.sandbox.shopify import payloads
from connector.sandbox.shopify.models import (
    QUANTITY_NAMES,
    InventoryItem,
    InventoryLevel,
    Location,
    gid,
    parse_gid,
)
from connector.sandbox.shopify.state import Context, Failure, StoreState, number_of

SET_REASONS: Final = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
MAX_QUANTITY: Final = 1_000_000_000


class InventoryMixin(StoreState):
    """Inventory levels and the quantity mutations."""

    def level(
        self, item_id: int | str, location_id: int | str | None = None, *, create: bool = False
    ) -> InventoryLevel:
        item = self.inventory_items[number_of(item_id, "InventoryItem")]
        location = (
            self.locations[number_of(location_id, "Location")]
            if location_id is not None
            else self.primary_location
        )
        found = item.levels.get(location.legacy_resource_id)
        if found is None:
            if not create:
                raise KeyError(f"inventory item {item.legacy_resource_id} is not stocked at {location.name}")
            when = self.now()
            found = InventoryLevel(item, location, dict.fromkeys(QUANTITY_NAMES, 0), when, when)
            item.levels[location.legacy_resource_id] = found
        return found

    def _change(self, level: InventoryLevel, name: str, delta: int, when: datetime) -> None:
        """Move one quantity, keeping on_hand = available + committed + reserved + the unavailable states."""
        if not delta:
            return
        level.quantities[name] = level.quantities.get(name, 0) + delta
        if name == "on_hand":
            level.quantities["available"] = level.quantities.get("available", 0) + delta
        elif name in ("available", "damaged", "safety_stock", "quality_control", "reserved", "committed"):
            level.quantities["on_hand"] = level.quantities.get("on_hand", 0) + delta
        level.updated_at = when
        level.item.updated_at = when

    def set_inventory(
        self, item_id: int | str, location_id: int | str | None, available: int, *, notify: bool = True
    ) -> InventoryLevel:
        """Set `available` (on_hand follows); sends inventory_levels/update."""
        with self.lock:
            level = self.level(item_id, location_id, create=True)
            self._change(level, "available", available - level.available, self.now())
            if notify:
                self._emit("inventory_levels/update", payloads.inventory_level(level))
            return level

    def set_quantities(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        """inventorySetQuantities with its idempotency key: the payload (`inventoryAdjustmentGroup`,
        `userErrors`), replayed for a repeated key with the same input."""
        return self._idempotent("inventorySetQuantities", data, key, self._set_quantities)

    def adjust_quantities(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        """inventoryAdjustQuantities with its idempotency key (deltas instead of absolute quantities)."""
        return self._idempotent("inventoryAdjustQuantities", data, key, self._adjust_quantities)

    def _idempotent(
        self, mutation: str, data: dict[str, Any], key: str, run: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        fingerprint = orjson.dumps({"mutation": mutation, "input": data}, option=orjson.OPT_SORT_KEYS)
        with self.lock:
            previous = self.idempotency.get(key)
            if previous is not None:
                if previous[0] != fingerprint:
                    return _errors(
                        Failure(
                            "The same idempotency key cannot be used with different operation parameters.",
                            None,
                            "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        )
                    )
                if previous[1]["userErrors"]:
                    return _errors(
                        Failure(
                            "A previous request with this idempotency key failed. Retry with a new idempotency key.",
                            None,
                            "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                        )
                    )
                return previous[1]
            result = run(data)
            self.idempotency[key] = (fingerprint, result)
            return result

    def _targets(
        self, name: str, entries: list[dict[str, Any]], field_name: str, absolute: bool
    ) -> tuple[list[tuple[InventoryItem, Location, int]], list[Failure]]:
        """Check each quantity (item, location, compare-and-swap, bounds): (item, location, delta) or failures."""
        failures: list[Failure] = []
        targets: list[tuple[InventoryItem, Location, int]] = []
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(entries):
            path = ["input", field_name, str(index)]
            pair = (entry["inventoryItemId"], entry["locationId"])
            if absolute and pair in seen:
                failures.append(
                    Failure(
                        "The combination of inventoryItemId and locationId must be unique.",
                        path,
                        "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    )
                )
                continue
            seen.add(pair)
            checked = self._target(name, entry, path, absolute)
            if isinstance(checked, Failure):
                failures.append(checked)
            else:
                targets.append(checked)
        return targets, failures

    def _target(
        self, name: str, entry: dict[str, Any], path: list[str], absolute: bool
    ) -> tuple[InventoryItem, Location, int] | Failure:
        """One quantity checked: (item, location, delta), or the first failure."""
        item = self.inventory_items.get(parse_gid(entry["inventoryItemId"], "InventoryItem") or -1)
        location = self.locations.get(parse_gid(entry["locationId"], "Location") or -1)
        if item is None:
            return Failure(
                "The specified inventory item could not be found.",
                [*path, "inventoryItemId"],
                "INVALID_INVENTORY_ITEM",
            )
        if location is None:
            return Failure(
                "The specified location could not be found.",
                [*path, "locationId"],
                "INVALID_LOCATION",
            )
        if "changeFromQuantity" not in entry:
            return Failure(
                "The changeFromQuantity argument must be given to each quantity or explicitly set to null.",
                [*path, "changeFromQuantity"],
                None,
            )
        level = item.levels.get(location.legacy_resource_id)
        current = level.quantities.get(name, 0) if level else 0
        target = entry["quantity"] if absolute else current + entry["delta"]
        if target > MAX_QUANTITY:
            return Failure(
                "The total quantity can't be higher than 1,000,000,000.",
                [*path, "quantity" if absolute else "delta"],
                "INVALID_QUANTITY_TOO_HIGH",
            )
        if target < -MAX_QUANTITY:
            return Failure(
                "The total quantity can't be lower than -1,000,000,000.",
                [*path, "quantity" if absolute else "delta"],
                "INVALID_QUANTITY_TOO_LOW",
            )
        if absolute and name == "on_hand" and target < 0:
            return Failure(
                "The quantity can't be negative.", [*path, "quantity"], "INVALID_QUANTITY_NEGATIVE"
            )
        expected = entry["changeFromQuantity"]
        if expected is not None and expected != current:
            return Failure(
                "The changeFromQuantity value does not match persisted value.",
                [*path, "changeFromQuantity"],
                "CHANGE_FROM_QUANTITY_STALE",
            )
        return item, location, target - current

    def _set_quantities(self, data: dict[str, Any]) -> dict[str, Any]:
        name, reason = data["name"], data["reason"]
        if name not in ("available", "on_hand"):
            return _errors(
                Failure(
                    "The quantity name must be either 'available' or 'on_hand'.",
                    ["input", "name"],
                    "INVALID_NAME",
                )
            )
        if reason not in SET_REASONS:
            return _errors(Failure("The specified reason is invalid.", ["input", "reason"], "INVALID_REASON"))
        targets, failures = self._targets(name, data["quantities"], "quantities", absolute=True)
        if failures:
            return _errors(*failures)
        return self._apply(name, data, targets)

    def _adjust_quantities(self, data: dict[str, Any]) -> dict[str, Any]:
        name, reason = data["name"], data["reason"]
        if name not in ("available", "damaged", "incoming", "quality_control", "reserved", "safety_stock"):
            return _errors(
                Failure("The quantity name is invalid.", ["input", "name"], "INVALID_QUANTITY_NAME")
            )
        if reason not in SET_REASONS:
            return _errors(Failure("The specified reason is invalid.", ["input", "reason"], "INVALID_REASON"))
        targets, failures = self._targets(name, data["changes"], "changes", absolute=False)
        if failures:
            return _errors(*failures)
        return self._apply(name, data, targets)

    def _apply(
        self, name: str, data: dict[str, Any], targets: list[tuple[InventoryItem, Location, int]]
    ) -> dict[str, Any]:
        when = self.now()
        changes: list[dict[str, Any]] = []
        for item, location, delta in targets:
            level = self.level(item.legacy_resource_id, location.legacy_resource_id, create=True)
            self._change(level, name, delta, when)
            moved = [name] if name == "incoming" else [name, "available" if name == "on_hand" else "on_hand"]
            for changed in moved:
                changes.append(
                    {
                        "name": changed,
                        "delta": delta,
                        "quantityAfterChange": level.quantities[changed],
                        "item": level.item,
                        "location": level.location,
                        "ledgerDocumentUri": None,
                    }
                )
            if "available" in moved:
                self._emit("inventory_levels/update", payloads.inventory_level(level))
        group_id = self.next_id("InventoryAdjustmentGroup")

        def pick(ctx: Context, **args: Any) -> list[dict[str, Any]]:
            items = set(args.get("inventoryItemIds") or ())
            locations = set(args.get("locationIds") or ())
            names = set(args.get("quantityNames") or ())
            return [
                change
                for change in changes
                if (not items or change["item"].id in items)
                and (not locations or change["location"].id in locations)
                and (not names or change["name"] in names)
            ]

        group = {
            "__typename": "InventoryAdjustmentGroup",
            "id": gid("InventoryAdjustmentGroup", group_id),
            "createdAt": when,
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": pick,
            "app": None,
            "staffMember": None,
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    def _claim_level(self, item: InventoryItem) -> InventoryLevel | None:
        level = item.levels.get(self.primary_location.legacy_resource_id)
        if level is not None:
            return level
        return next(iter(item.levels.values()), None)


def _errors(*failures: Failure) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None, "userErrors": [f.as_json() for f in failures]}
