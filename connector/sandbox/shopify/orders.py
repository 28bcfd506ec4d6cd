"""Order changes of the emulated shop: `orderCreate` with inventory claims, asynchronous cancellation jobs,
fulfilments and refunds, each moving the committed and available quantities and sending its webhooks."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from connector.sandbox.shopify import payloads
from connector.sandbox.shopify.inventory import InventoryMixin
from connector.sandbox.shopify.models import InventoryLevel, parse_gid
from connector.sandbox.shopify.order_models import Job, LineItem, Order, Transaction
from connector.sandbox.shopify.search import parse_time, to_decimal
from connector.sandbox.shopify.state import Failure, number_of


class OrdersMixin(InventoryMixin):
    """Orders: created, cancelled (as a job), fulfilled and refunded."""

    def create_order(self, data: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
        """orderCreate: the payload (`order`, `userErrors`)."""
        behaviour = (options or {}).get("inventoryBehaviour") or "BYPASS"
        currency = data.get("currency") or self.shop.currency_code
        with self.lock:
            failures: list[Failure] = []
            lines: list[LineItem] = []
            claims: list[tuple[InventoryLevel, int, LineItem]] = []
            for index, entry in enumerate(data.get("lineItems") or []):
                self._order_line(
                    entry, ["order", "lineItems", str(index)], behaviour, lines, claims, failures
                )
            if not lines and not failures:
                failures.append(
                    Failure("Line items must have at least one line item", ["order", "lineItems"], "INVALID")
                )
            for index, tax in enumerate(data.get("taxLines") or []):
                if tax.get("rate") is None:
                    failures.append(
                        Failure(
                            "Tax line rate is missing",
                            ["order", "taxLines", str(index), "rate"],
                            "TAX_LINE_RATE_MISSING",
                        )
                    )
            if failures:
                return {"order": None, "userErrors": [f.as_json() for f in failures]}
            now = self.now()
            order = self._new_order(data, currency, lines, now)
            for level, quantity, line in claims:
                self._change(level, "available", -quantity, now)
                self._change(level, "committed", quantity, now)
                line.committed = quantity
            self.orders[order.legacy_resource_id] = order
            body = payloads.order(order)
            self._emit("orders/create", body)
            if order.financial_status == "PAID":
                self._emit("orders/paid", body)
            for level, _, _ in claims:
                self._emit("inventory_levels/update", payloads.inventory_level(level))
            return {"order": order, "userErrors": []}

    def _order_line(
        self,
        entry: dict[str, Any],
        path: list[str],
        behaviour: str,
        lines: list[LineItem],
        claims: list[tuple[InventoryLevel, int, LineItem]],
        failures: list[Failure],
    ) -> None:
        """One `lineItems` entry: its line item (and its inventory claim), or a failure."""
        variant = None
        if entry.get("variantId"):
            variant = self.variants.get(parse_gid(entry["variantId"], "ProductVariant") or -1)
            if variant is None:
                failures.append(Failure("invalid variant", [*path, "variantId"], "INVALID"))
                return
        price_set = entry.get("priceSet")
        price = to_decimal(price_set["shopMoney"]["amount"]) if price_set else None
        if price is None:
            if variant is None:
                failures.append(
                    Failure("Price set is required for custom line items", [*path, "priceSet"], "INVALID")
                )
                return
            price = variant.price
        if variant is None and not entry.get("title"):
            failures.append(Failure("Title can't be blank", [*path, "title"], "INVALID"))
            return
        quantity = int(entry["quantity"])
        if quantity < 1:
            failures.append(
                Failure("Quantity must be greater than or equal to 1", [*path, "quantity"], "INVALID")
            )
            return
        tax_lines = [_tax_input(tax) for tax in entry.get("taxLines") or []]
        line = LineItem(
            legacy_resource_id=self.next_id("LineItem"),
            title=entry.get("title") or (variant.product.title if variant else ""),
            variant_title=entry.get("variantTitle") or (variant.title if variant else None),
            sku=entry.get("sku") or (variant.sku if variant else None),
            vendor=entry.get("vendor") or (variant.product.vendor if variant else None),
            quantity=quantity,
            price=price,
            variant=variant,
            tax_lines=tax_lines,
            requires_shipping=entry.get("requiresShipping", True) is not False,
            taxable=entry.get("taxable", True) is not False,
        )
        lines.append(line)
        if variant is not None and behaviour != "BYPASS" and variant.inventory_item.tracked:
            level = self._claim_level(variant.inventory_item)
            if level is None or (
                behaviour == "DECREMENT_OBEYING_POLICY"
                and variant.inventory_policy == "DENY"
                and level.available < quantity
            ):
                failures.append(
                    Failure(
                        f"Unable to claim inventory for {variant.product.title}",
                        [*path, "variantId"],
                        "INVENTORY_CLAIM_FAILED",
                    )
                )
                return
            claims.append((level, quantity, line))

    def _new_order(self, data: dict[str, Any], currency: str, lines: list[LineItem], now: datetime) -> Order:
        """The order an `orderCreate` input describes, with its transactions (not yet stored)."""
        processed = parse_time(data["processedAt"]) if data.get("processedAt") else now
        order = Order(
            legacy_resource_id=self.next_id("Order"),
            number=next(self._order_numbers),
            email=data.get("email"),
            currency_code=currency,
            line_items=lines,
            tax_lines=[_tax_input(tax) for tax in data.get("taxLines") or []],
            shipping_lines=[
                {
                    "title": line.get("title"),
                    "code": line.get("code"),
                    "price": str(
                        to_decimal(line["priceSet"]["shopMoney"]["amount"])
                        if line.get("priceSet")
                        else Decimal(0)
                    ),
                }
                for line in data.get("shippingLines") or []
            ],
            transactions=[],
            shipping_address=data.get("shippingAddress"),
            billing_address=data.get("billingAddress"),
            tags=sorted({tag.strip() for tag in data.get("tags") or [] if tag.strip()}),
            source_identifier=data.get("sourceIdentifier"),
            source_name=data.get("sourceName"),
            note=data.get("note"),
            taxes_included=bool(data.get("taxesIncluded")),
            test=bool(data.get("test")),
            created_at=now,
            updated_at=now,
            processed_at=processed or now,
            custom_attributes=[
                {"key": str(item["key"]), "value": str(item["value"])}
                for item in data.get("customAttributes") or []
            ],
        )
        for entry in data.get("transactions") or []:
            amount = to_decimal(entry["amountSet"]["shopMoney"]["amount"]) or Decimal(0)
            order.transactions.append(
                Transaction(
                    legacy_resource_id=self.next_id("OrderTransaction"),
                    kind=entry.get("kind") or "SALE",
                    status=entry.get("status") or "SUCCESS",
                    gateway=entry.get("gateway") or "manual",
                    amount=amount,
                    created_at=now,
                    processed_at=(parse_time(entry["processedAt"]) if entry.get("processedAt") else None)
                    or now,
                    test=bool(entry.get("test")),
                )
            )
        return order

    def cancel_order(
        self,
        order_id: int | str,
        *,
        reason: str = "OTHER",
        restock: bool = False,
        refund: bool = False,
        staff_note: str | None = None,
    ) -> tuple[Job | None, list[Failure]]:
        """orderCancel: queues a job that cancels the order after `job_delay` seconds (or on `run_jobs`)."""
        with self.lock:
            order = self.orders.get(number_of(order_id, "Order"))
            if order is None:
                return None, [Failure("Order does not exist", ["orderId"], "NOT_FOUND")]
            if order.cancelled_at is not None:
                return None, [Failure("Order has already been cancelled", ["orderId"], "INVALID")]
            if order.fulfillment_status == "FULFILLED":
                return None, [Failure("Cannot cancel a fulfilled order", ["orderId"], "INVALID")]
            job = Job(
                id=f"gid://shopify/Job/{uuid.uuid4()}", order=order, run_at=self.clock() + self.job_delay
            )
            self.jobs[job.id] = job
            self._pending_cancellations[job.id] = {
                "reason": reason,
                "restock": restock,
                "refund": refund,
                "note": staff_note,
            }
        timer = threading.Timer(self.job_delay, self.run_jobs)
        timer.daemon = True
        timer.start()
        return job, []

    def run_jobs(self, *, force: bool = False) -> None:
        """Finish the asynchronous jobs whose time has come (all of them with `force`)."""
        with self.lock:
            now = self.clock()
            for job_id, job_args in list(self._pending_cancellations.items()):
                job = self.jobs[job_id]
                if not force and job.run_at > now:
                    continue
                del self._pending_cancellations[job_id]
                if job.order is not None:
                    self._cancel(job.order, **job_args)
                job.done, job.status = True, "SUCCEEDED"

    def _cancel(self, order: Order, *, reason: str, restock: bool, refund: bool, note: str | None) -> None:
        when = self.now()
        order.cancelled_at = order.closed_at = order.updated_at = when
        order.cancel_reason = reason
        touched: list[InventoryLevel] = []
        if restock:
            for line in order.line_items:
                if line.variant is not None and line.committed > 0:
                    level = self._claim_level(line.variant.inventory_item)
                    if level is not None:
                        self._change(level, "committed", -line.committed, when)
                        self._change(level, "available", line.committed, when)
                        line.committed = 0
                        touched.append(level)
        if refund and order.received > 0:
            self._refund(
                order,
                {
                    line.legacy_resource_id: line.quantity - line.refunded_quantity
                    for line in order.line_items
                },
                order.received,
                False,
                note,
                when,
            )
        body = payloads.order(order)
        self._emit("orders/cancelled", body)
        self._emit("orders/updated", body)
        for level in touched:
            self._emit("inventory_levels/update", payloads.inventory_level(level))

    def fulfill_order(
        self,
        order_id: int | str,
        *,
        lines: dict[int, int] | None = None,
        tracking_number: str | None = None,
        tracking_company: str | None = None,
    ) -> Order:
        """Fulfil lines (line item id -> quantity; all open quantities by default): committed and on_hand drop.
        Sends fulfillments/create, orders/fulfilled or orders/partially_fulfilled, and orders/updated."""
        with self.lock:
            order = self.order(order_id)
            when = self.now()
            chosen = lines or {
                line.legacy_resource_id: line.quantity - line.refunded_quantity - line.fulfilled_quantity
                for line in order.line_items
            }
            by_id = {line.legacy_resource_id: line for line in order.line_items}
            done: list[int] = []
            for line_id, quantity in chosen.items():
                line = by_id[line_id]
                quantity = min(quantity, line.quantity - line.refunded_quantity - line.fulfilled_quantity)
                if quantity <= 0:
                    continue
                line.fulfilled_quantity += quantity
                done.append(line_id)
                if line.variant is not None:
                    level = self._claim_level(line.variant.inventory_item)
                    shipped = min(quantity, line.committed)
                    if level is not None and shipped:
                        self._change(level, "committed", -shipped, when)
                        line.committed -= shipped
                        line.consumed += shipped
            fulfillment = {
                "id": self.next_id("Fulfillment"),
                "created_at": when,
                "lines": done,
                "tracking_number": tracking_number,
                "tracking_company": tracking_company,
            }
            order.fulfillments.append(fulfillment)
            order.updated_at = when
            body = payloads.order(order)
            fulfilled_body = next(f for f in body["fulfillments"] if f["id"] == fulfillment["id"])
            self._emit("fulfillments/create", fulfilled_body)
            status = order.fulfillment_status
            self._emit("orders/fulfilled" if status == "FULFILLED" else "orders/partially_fulfilled", body)
            self._emit("orders/updated", body)
            return order

    def refund_order(
        self,
        order_id: int | str,
        *,
        lines: dict[int, int] | None = None,
        amount: Decimal | str | None = None,
        restock: bool = True,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Refund lines (line item id -> quantity; everything by default) with an optional amount; restocking
        returns the quantities to `available`. Sends refunds/create, orders/updated, inventory_levels/update."""
        with self.lock:
            order = self.order(order_id)
            chosen = lines or {
                line.legacy_resource_id: line.quantity - line.refunded_quantity for line in order.line_items
            }
            by_id = {line.legacy_resource_id: line for line in order.line_items}
            everything = all(
                chosen.get(line.legacy_resource_id, 0) >= line.quantity - line.refunded_quantity
                for line in order.line_items
            )
            if amount is not None:
                value = Decimal(str(amount))
            elif everything:
                value = order.received
            else:
                value = sum(
                    (by_id[line_id].price * quantity for line_id, quantity in chosen.items()), Decimal(0)
                )
            return self._refund(order, chosen, value, restock, note, self.now())

    def _refund(
        self,
        order: Order,
        chosen: dict[int, int],
        value: Decimal,
        restock: bool,
        note: str | None,
        when: datetime,
    ) -> dict[str, Any]:
        by_id = {line.legacy_resource_id: line for line in order.line_items}
        touched: list[InventoryLevel] = []
        for line_id, quantity in chosen.items():
            line = by_id[line_id]
            line.refunded_quantity += quantity
            if restock and line.variant is not None:
                level = self._claim_level(line.variant.inventory_item)
                from_committed = min(quantity, line.committed)
                returned = min(quantity - from_committed, line.consumed)
                if level is not None and from_committed + returned:
                    self._change(level, "committed", -from_committed, when)
                    self._change(level, "available", from_committed + returned, when)
                    line.committed -= from_committed
                    line.consumed -= returned
                    touched.append(level)
        transaction = Transaction(
            self.next_id("OrderTransaction"), "REFUND", "SUCCESS", "manual", value, when, when
        )
        order.transactions.append(transaction)
        entry = {
            "id": self.next_id("Refund"),
            "created_at": when,
            "note": note,
            "amount": value,
            "restock": restock,
            "lines": dict(chosen),
            "transaction_id": transaction.legacy_resource_id,
            "location_id": self.primary_location.legacy_resource_id if restock else None,
        }
        order.refunds.append(entry)
        order.updated_at = when
        self._emit("refunds/create", payloads.refund(order, entry))
        self._emit("orders/updated", payloads.order(order))
        for level in touched:
            self._emit("inventory_levels/update", payloads.inventory_level(level))
        return entry


def _tax_input(tax: dict[str, Any]) -> dict[str, Any]:
    price = tax.get("priceSet")
    return {
        "title": tax.get("title"),
        "rate": tax.get("rate"),
        "price": str(to_decimal(price["shopMoney"]["amount"]) if price else Decimal(0)),
        "channel_liable": bool(tax.get("channelLiable")),
    }
