"""Walmart's stock kept true on both channels: what the core's generic jobs ask of the Walmart adapter.

- Platform sales for sellers not on Multichannel: the core's `take_off_store_stock` records each SKU's
  step and asks `read_stock` / `reduce_stock_for_sale` here (Walmart's level per ship node).
- Walmart purchase orders: the core's orders poll lists them through `list_store_orders` (`GET /v3/orders`)
  and takes each off the platform's stock once.
- Inventory reconcile: Walmart retries a notification only a few times, so the core reads a slice of the
  merchant's SKUs on every run (`RECONCILE_BATCH`) as the backstop.

`PERIODIC_JOBS` is what the core's scheduler runs for every installed Walmart merchant.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Final, Protocol

from connector.domain.catalog import InventoryLevel
from connector.domain.ports import PeriodicJob, StoreJob, StoreOrder

ORDERS_POLL_SECONDS: Final = 60
RECONCILE_SECONDS: Final = 300
RECONCILE_BATCH: Final = 500
"""SKUs read from Walmart per reconcile run (one call each): a 20,000-item catalog is covered in 40 runs."""

PERIODIC_JOBS: Final = (
    PeriodicJob(StoreJob.STORE_ORDERS, ORDERS_POLL_SECONDS),
    PeriodicJob(StoreJob.STOCK_RECONCILE, RECONCILE_SECONDS, batch=RECONCILE_BATCH),
)


class _Orders(Protocol):
    def iter_orders(self, created_since: datetime) -> Iterator[StoreOrder]: ...


class _Stock(Protocol):
    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]: ...

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None: ...


class StoreStockJobs:
    """`ListsStoreOrders` and `ReducesStockForSale` of the Walmart adapter (mixed into it)."""

    def list_store_orders(self: _Orders, created_since: datetime) -> Iterator[StoreOrder]:
        """Purchase orders placed on Walmart since `created_since` (an order on a window bound can come
        twice: the core applies each once)."""
        return self.iter_orders(created_since)

    def read_stock(self: _Stock, sku: str) -> InventoryLevel | None:
        found = self.get_inventory([sku])
        return found[0] if found else None

    def reduce_stock_for_sale(self: _Stock, sku: str, location_ref: str, target: int) -> None:
        self.set_inventory([InventoryLevel(sku, location_ref, target)])
