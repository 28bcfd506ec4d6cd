"""Catalog operations of an emulated Walmart seller: adding and seeding items, publishing and unpublishing
(OFFER_PUBLISHED / OFFER_UNPUBLISHED), and cursor pages of `GET /v3/items`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from connector.sandbox.walmart.records import PRODUCT_TYPES, SHELVES, Item, NodeStock, upc_check_digit
from connector.sandbox.walmart.state import StoreState


class CatalogMixin(StoreState):
    """The seller's items."""

    def add_item(
        self,
        sku: str,
        *,
        product_name: str | None = None,
        price: float = 19.99,
        upc: str = "",
        quantity_by_node: dict[str, int] | None = None,
        published_status: str = "PUBLISHED",
        lifecycle_status: str = "ACTIVE",
        shelf: Sequence[str] = SHELVES[0],
        product_type: str = PRODUCT_TYPES[0],
    ) -> Item:
        """Add (or replace) one item with stock at the given nodes (every other node gets 0)."""
        with self.lock:
            index = len(self._item_order)
            item = Item(
                sku=sku,
                product_name=product_name or f"Item {sku}",
                price=price,
                upc=upc,
                gtin=f"00{upc}" if upc else "",
                wpid=f"{uuid.UUID(int=self._random.getrandbits(128)).hex[:12].upper()}",
                item_id=str(100_000_000 + index),
                shelf=tuple(shelf),
                product_type=product_type,
                published_status=published_status,
                lifecycle_status=lifecycle_status,
                unpublished_reasons=()
                if published_status == "PUBLISHED"
                else ("No shipping information was set up for this item.",),
            )
            if sku not in self.items:
                self._item_order.append(sku)
            self.items[sku] = item
            wanted = quantity_by_node or {}
            self.stock[sku] = {node: NodeStock(input_qty=wanted.get(node, 0)) for node in self.ship_nodes}
            return item

    def seed_catalog(
        self,
        n_items: int,
        *,
        sku_prefix: str = "WM-SKU-",
        quantity: int | Callable[[int], int] = 10,
        empty_upc_every: int = 5,
        unpublished_every: int = 0,
        price: Callable[[int], float] | None = None,
    ) -> list[Item]:
        """Create `n_items` items `{sku_prefix}{i:06d}` with prices, UPCs (every `empty_upc_every`-th one
        empty, 0 for none), and `quantity` (or `quantity(i)`) units at the default ship node."""
        items: list[Item] = []
        with self.lock:
            for i in range(n_items):
                upc = ""
                if not empty_upc_every or i % empty_upc_every != empty_upc_every - 1:
                    body = f"{88_685_000_000 + len(self._item_order):011d}"
                    upc = body + upc_check_digit(body)
                units = quantity(i) if callable(quantity) else quantity
                unpublished = bool(unpublished_every) and i % unpublished_every == unpublished_every - 1
                items.append(
                    self.add_item(
                        f"{sku_prefix}{i:06d}",
                        product_name=f"Sandbox product {i}",
                        price=price(i) if price else round(5 + (i * 37 % 9500) / 100, 2),
                        upc=upc,
                        quantity_by_node={self.default_ship_node: units},
                        published_status="UNPUBLISHED" if unpublished else "PUBLISHED",
                        shelf=SHELVES[i % len(SHELVES)],
                        product_type=PRODUCT_TYPES[i % len(PRODUCT_TYPES)],
                    )
                )
        return items

    def item(self, sku: str) -> Item | None:
        with self.lock:
            return self.items.get(sku)

    def set_published(self, sku: str, published: bool) -> None:
        """Publish or unpublish an item, announcing OFFER_PUBLISHED / OFFER_UNPUBLISHED."""
        with self.lock:
            item = self._require_item(sku)
            item.published_status = "PUBLISHED" if published else "UNPUBLISHED"
            item.unpublished_reasons = () if published else ("Item is unpublished by the seller.",)
            payload: dict[str, Any] = {
                "partnerId": self.partner_id,
                "itemId": item.item_id,
                "sku": sku,
                "itemName": item.product_name,
                "publishStatus": item.published_status,
                "lifecycleStatus": item.lifecycle_status,
            }
            if not published:
                payload["statusChangeReasons"] = {"reasons": list(item.unpublished_reasons)}
        self._emit("OFFER_PUBLISHED" if published else "OFFER_UNPUBLISHED", payload)

    def set_category(
        self, sku: str, *, shelf: Sequence[str] | None = None, product_type: str | None = None
    ) -> Item:
        """Move an item to another shelf path or product type, as an item feed (MP_ITEM) would; Walmart sends
        no notification for it."""
        with self.lock:
            item = self._require_item(sku)
            if shelf is not None:
                item.shelf = tuple(shelf)
            if product_type is not None:
                item.product_type = product_type
            return item

    def items_page(
        self,
        position: int,
        limit: int,
        *,
        sku: str | None = None,
        lifecycle_status: str | None = None,
        published_status: str | None = None,
    ) -> tuple[list[dict[str, Any]], int | None, int]:
        """Up to `limit` matching items from `position` in catalog order: (items, next position or None at
        the end, total matching)."""

        def matches(item: Item) -> bool:
            return (
                (sku is None or item.sku == sku)
                and (lifecycle_status is None or item.lifecycle_status == lifecycle_status)
                and (published_status is None or item.published_status == published_status)
            )

        with self.lock:
            order = self._item_order
            filtered = sku is not None or lifecycle_status is not None or published_status is not None
            if not filtered:
                chosen = [self.items[s] for s in order[position : position + limit]]
                after = position + len(chosen)
                total = len(order)
            else:
                chosen = []
                after = position
                while after < len(order) and len(chosen) < limit:
                    candidate = self.items[order[after]]
                    after += 1
                    if matches(candidate):
                        chosen.append(candidate)
                total = sum(1 for s in order if matches(self.items[s]))
                while after < len(order) and not matches(self.items[order[after]]):
                    after += 1
            following = after if after < len(order) else None
            return [item.to_json() for item in chosen], following, total
