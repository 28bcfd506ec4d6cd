"""Inventory operations of an emulated Walmart seller: stock per SKU and ship node (set, read, paged), and
the INVENTORY_OOS announcement when a SKU runs out."""

from __future__ import annotations

from typing import Any

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.records import NodeStock, quantity
from connector.sandbox.walmart.state import StoreState


class InventoryMixin(StoreState):
    """The seller's stock per ship node."""

    def _require_node(self, ship_node: str | None) -> str:
        node = ship_node or self.default_ship_node
        if node not in self.ship_nodes:
            raise WalmartError.bad_param("shipNode", f"Invalid shipNode {node}")
        return node

    def total_available(self, sku: str) -> int:
        with self.lock:
            return sum(s.avail for s in self.stock.get(sku, {}).values())

    def nodes(self, sku: str) -> dict[str, NodeStock]:
        """A copy of one SKU's stock per ship node."""
        with self.lock:
            self._require_item(sku)
            return {node: NodeStock(s.input_qty, s.reserved) for node, s in self.stock[sku].items()}

    def get_quantity(self, sku: str, ship_node: str | None = None) -> int:
        """The quantity the seller set at one node (the default node unless named)."""
        with self.lock:
            self._require_item(sku)
            return self.stock[sku][self._require_node(ship_node)].input_qty

    def set_quantity(self, sku: str, amount: int, ship_node: str | None = None) -> None:
        """Set the seller's quantity at one node; announces INVENTORY_OOS when the SKU runs out."""
        with self.lock:
            self._require_item(sku)
            node = self._require_node(ship_node)
            before = self.total_available(sku)
            self.stock[sku][node].input_qty = amount
            self._after_stock_change(sku, before)

    def _after_stock_change(self, sku: str, before: int) -> None:
        after = self.total_available(sku)
        if before > 0 and after == 0:
            item = self.items[sku]
            payload = {
                "partnerId": self.partner_id,
                "itemId": item.item_id,
                "sku": sku,
                "productName": item.product_name,
                "category": item.product_type,
                "shipNodes": [
                    {"availToSellQty": s.avail, "shipNode": node, "shipNodeName": f"Node {node}"}
                    for node, s in self.stock[sku].items()
                ],
            }
            self._emit("INVENTORY_OOS", payload)

    def node_json(self, sku: str, ship_node: str | None = None) -> dict[str, Any]:
        """`GET /v3/inventories/{sku}`: every node, or one."""
        with self.lock:
            self._require_item(sku)
            wanted = [self._require_node(ship_node)] if ship_node else list(self.stock[sku])
            return {
                "sku": sku,
                "nodes": [
                    {
                        "shipNode": node,
                        "inputQty": quantity(self.stock[sku][node].input_qty),
                        "availToSellQty": quantity(self.stock[sku][node].avail),
                        "reservedQty": quantity(self.stock[sku][node].reserved),
                    }
                    for node in wanted
                ],
            }

    def inventories_page(self, position: int, limit: int) -> tuple[list[dict[str, Any]], int | None, int]:
        with self.lock:
            skus = self._item_order[position : position + limit]
            after = position + len(skus)
            return (
                [self.node_json(sku) for sku in skus],
                after if after < len(self._item_order) else None,
                len(self._item_order),
            )
