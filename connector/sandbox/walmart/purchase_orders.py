"""Walmart-originated purchase orders of an emulated seller: placed (reserving stock, announcing PO_CREATED),
queried, acknowledged, shipped and cancelled, each moving the reserved and input quantities."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.inventory import InventoryMixin
from connector.sandbox.walmart.orders import LineStatus, Order, OrderLine, apply_cancellation, apply_shipment
from connector.sandbox.walmart.records import UNIT, epoch_ms, iso_ms

logger = logging.getLogger(__name__)


class PurchaseOrdersMixin(InventoryMixin):
    """The seller's Walmart.com purchase orders."""

    def add_order(
        self,
        lines: Iterable[tuple[str, int]],
        *,
        order_date: float | None = None,
        ship_node_type: str = "SellerFulfilled",
        reserve: bool = True,
    ) -> Order:
        """A purchase order placed on Walmart.com for (sku, qty) lines; its units are reserved at the default
        ship node (`reserve`) and PO_CREATED is announced."""
        with self.lock:
            when = self.clock() if order_date is None else order_date
            made: list[OrderLine] = []
            for number, (sku, qty) in enumerate(lines, start=1):
                item = self._require_item(sku)
                made.append(
                    OrderLine(
                        str(number),
                        sku,
                        item.product_name,
                        qty,
                        item.price,
                        status_date=epoch_ms(when),
                        statuses=[LineStatus("Created", qty)],
                    )
                )
            order = Order(
                purchase_order_id=str(next(self._po_numbers)),
                customer_order_id=str(next(self._customer_numbers)),
                order_date=epoch_ms(when),
                lines=made,
                ship_node_type=ship_node_type,
                ship_node_id=self.default_ship_node,
                last_modified=epoch_ms(when),
            )
            self.orders[order.purchase_order_id] = order
            if reserve:
                for line in made:
                    before = self.total_available(line.sku)
                    self.stock[line.sku][self.default_ship_node].reserved += line.qty
                    self._after_stock_change(line.sku, before)
            payload = {
                "partnerId": self.partner_id,
                "purchaseOrderId": order.purchase_order_id,
                "customerOrderId": order.customer_order_id,
                "orderDate": iso_ms(when),
                "estimatedDeliveryDate": iso_ms(when + 5 * 86400),
                "estimatedShipDate": iso_ms(when + 2 * 86400),
                "orderLines": [
                    {
                        "lineNumber": line.line_number,
                        "sku": line.sku,
                        "productName": line.product_name,
                        "quantity": {"unitOfMeasure": UNIT, "measurementValue": str(line.qty)},
                        "status": "CREATED",
                        "statusDate": iso_ms(when),
                        "shippingProgramType": "TWO_DAY",
                        "shippingMethod": "Standard",
                        "shipNodeType": ship_node_type,
                    }
                    for line in made
                ],
            }
        logger.info("walmart emulator order created", extra={"purchase_order_id": order.purchase_order_id})
        self._emit("PO_CREATED", payload)
        return order

    def query_orders(
        self,
        *,
        start_ms: int,
        end_ms: int,
        ship_node_type: str,
        status: str | None = None,
        sku: str | None = None,
        purchase_order_id: str | None = None,
        customer_order_id: str | None = None,
        modified_from_ms: int | None = None,
        modified_to_ms: int | None = None,
        released_only: bool = False,
    ) -> list[Order]:
        """Matching orders, newest first (ties by purchase order id). `status` matches any line status entry;
        `released_only` keeps orders with a line quantity still Created."""
        with self.lock:
            found = [
                o
                for o in self.orders.values()
                if start_ms <= o.order_date <= end_ms
                and o.ship_node_type == ship_node_type
                and (status is None or any(line.quantity_in(status) for line in o.lines))
                and (not released_only or any(line.quantity_in("Created") for line in o.lines))
                and (sku is None or any(line.sku == sku for line in o.lines))
                and (purchase_order_id is None or o.purchase_order_id == purchase_order_id)
                and (customer_order_id is None or o.customer_order_id == customer_order_id)
                and (modified_from_ms is None or o.last_modified >= modified_from_ms)
                and (modified_to_ms is None or o.last_modified <= modified_to_ms)
            ]
            found.sort(key=lambda o: (-o.order_date, o.purchase_order_id))
            return found

    def order(self, purchase_order_id: str) -> Order:
        with self.lock:
            order = self.orders.get(purchase_order_id)
            if order is None:
                raise WalmartError.not_found(
                    f"Purchase order {purchase_order_id} not found", field="purchaseOrderId"
                )
            return order

    def acknowledge(self, purchase_order_id: str) -> Order:
        """Move every Created quantity to Acknowledged (allowed again on an acknowledged order)."""
        with self.lock:
            order = self.order(purchase_order_id)
            if order.ship_node_type == "WFSFulfilled":
                raise WalmartError.bad_content(
                    "purchaseOrderId", "WFS-fulfilled orders cannot be acknowledged"
                )
            now = epoch_ms(self.clock())
            for line in order.lines:
                created = line.quantity_in("Created")
                if created:
                    line.move(created, LineStatus("Acknowledged", created), now)
                    line.statuses = _merged(line.statuses)
            order.last_modified = now
            return order

    def ship_order(self, purchase_order_id: str, body: Any) -> Order:
        """`POST /v3/orders/{po}/shipping`: shipped units leave the default node (input and reserved)."""
        with self.lock:
            order = self.order(purchase_order_id)
            for sku, qty in apply_shipment(order, body, epoch_ms(self.clock())):
                stock = self.stock[sku][order.ship_node_id or self.default_ship_node]
                stock.reserved = max(0, stock.reserved - qty)
                stock.input_qty = max(0, stock.input_qty - qty)
            return order

    def cancel_order(self, purchase_order_id: str, body: Any) -> Order:
        """`POST /v3/orders/{po}/cancel`: cancelled units are released back to sale."""
        with self.lock:
            order = self.order(purchase_order_id)
            for sku, qty in apply_cancellation(order, body, epoch_ms(self.clock())):
                stock = self.stock[sku][order.ship_node_id or self.default_ship_node]
                stock.reserved = max(0, stock.reserved - qty)
            return order


def _merged(entries: list[LineStatus]) -> list[LineStatus]:
    """Entries of the same status without tracking or reason folded into one."""
    merged: list[LineStatus] = []
    for entry in entries:
        same = next(
            (
                m
                for m in merged
                if m.status == entry.status
                and m.tracking is None
                and entry.tracking is None
                and m.cancellation_reason == entry.cancellation_reason
            ),
            None,
        )
        if same is None:
            merged.append(entry)
        else:
            same.qty += entry.qty
    return merged
