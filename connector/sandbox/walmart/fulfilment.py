"""Multichannel Solutions (MCS) of an emulated Walmart seller: sales channels, fulfilment orders validated on
create, sourced (reserve or reject) once due, cancelled and shipped, with their ORDER_STATUS_UPDATE and
ORDER_SHIPMENT_UPDATE announcements."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.inventory import InventoryMixin
from connector.sandbox.walmart.records import (
    MAX_SELLER_LINE_ID,
    MAX_SELLER_ORDER_ID,
    MCS_EVENT_STATUS,
    SELLER_ORDER_ID,
    UNIT,
    Channel,
    FulfilmentLine,
    FulfilmentOrder,
    iso_ms,
)

logger = logging.getLogger(__name__)


class FulfilmentMixin(InventoryMixin):
    """The seller's MCS channels and fulfilment orders."""

    def require_mcs(self) -> None:
        if not self.mcs_enrolled:
            raise WalmartError.mcs(
                403,
                "INVALID_MCS_REQUEST",
                "Seller is not onboarded to Multichannel Solutions",
                field="partnerId",
                info=f"partnerId {self.partner_id} is not enabled for MCS",
            )

    def add_channel(
        self,
        name: str = "Video commerce",
        *,
        return_address: dict[str, Any] | None = None,
        carrier_preference: str = "",
        active: bool = True,
        channel_id: str | None = None,
    ) -> Channel:
        with self.lock:
            channel = Channel(
                channel_id or uuid.UUID(int=self._random.getrandbits(128)).hex.upper()[:20],
                name,
                dict(return_address or {}),
                carrier_preference,
                active,
            )
            self.channels[channel.order_channel_id] = channel
            return channel

    def create_fulfilment(self, payload: dict[str, Any]) -> FulfilmentOrder:
        """Validate an MCS create-order payload (the `payload` part) and record the order as RECEIVED."""
        with self.lock:
            self.fulfilment_attempts += 1
            seller_order_id = payload.get("sellerOrderId")
            customer_order_no = payload.get("customerOrderNo")
            if seller_order_id is None and isinstance(customer_order_no, str):
                seller_order_id = customer_order_no
            if not isinstance(seller_order_id, str) or not seller_order_id:
                raise _invalid("sellerOrderId", "sellerOrderId is required", code="INVALID_SELLER_ORDER_ID")
            if customer_order_no is not None and customer_order_no != seller_order_id:
                raise _invalid(
                    "customerOrderNo",
                    "sellerOrderId and customerOrderNo must match",
                    code="SELLER_ORDER_ID_CUSTOMER_ORDER_NO_SAME",
                )
            if len(seller_order_id) > MAX_SELLER_ORDER_ID or not SELLER_ORDER_ID.fullmatch(seller_order_id):
                raise _invalid(
                    "sellerOrderId",
                    f"sellerOrderId must be at most {MAX_SELLER_ORDER_ID} alphanumeric characters",
                    code="INVALID_SELLER_ORDER_ID",
                )
            channel_id = payload.get("orderChannelId")
            channel = self.channels.get(channel_id) if isinstance(channel_id, str) else None
            if channel is None or not channel.active:
                raise _invalid("orderChannelId", "orderChannelId is not a valid sales channel of the seller")
            placed = payload.get("orderPlacedTime")
            if not isinstance(placed, str) or not _parse_time(placed):
                raise _invalid("orderPlacedTime", "orderPlacedTime must be an ISO-8601 date-time")
            for flag in ("needsConfirmation", "partialFulfillments"):
                if payload.get(flag, False) is not False:
                    raise _invalid(flag, f"{flag}: only false is supported")
            customer = payload.get("customer")
            if not isinstance(customer, dict) or not isinstance(customer.get("contact"), dict):
                raise _invalid("customer", "customer.contact is required")
            items = payload.get("orderItems")
            if not isinstance(items, list) or not items:
                raise _invalid("orderItems", "orderItems is required")
            lines: list[FulfilmentLine] = []
            shipping_to: dict[str, Any] = {}
            for position, entry in enumerate(items):
                lines.append(_fulfilment_line(entry, position, {line.seller_line_id for line in lines}))
                shipping_to = entry["shippingTo"]
            if seller_order_id in self.fulfilments:
                raise _invalid(
                    "sellerOrderId",
                    f"Duplicate sellerOrderId {seller_order_id}: an order with this sellerOrderId already exists",
                    code="INVALID_SELLER_ORDER_ID",
                    info="DUPLICATE_SELLER_ORDER_ID",
                )
            now = self.clock()
            order = FulfilmentOrder(
                seller_order_id=seller_order_id,
                request_id=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
                order_channel_id=channel.order_channel_id,
                order_placed_time=placed,
                created_at=now,
                due_at=now + self.mcs_delay,
                lines=lines,
                customer=customer,
                shipping_to=shipping_to,
            )
            self.fulfilments[seller_order_id] = order
            self._pending_fulfilments.append(order)
            self.fulfilment_requests[order.request_id] = seller_order_id
            logger.info(
                "walmart emulator MCS order received",
                extra={"seller_order_id": seller_order_id, "request_id": order.request_id},
            )
            return order

    def _source(self, order: FulfilmentOrder) -> None:
        """Accept (reserve stock) or reject the whole order, as Walmart does after the delivery-promise check."""
        problem: tuple[str, str] | None = None
        needed: Counter[str] = Counter()
        for line in order.lines:
            if line.status == "CANCELLED":
                continue
            if line.sku not in self.items:
                problem = ("ITEM_NOT_FOUND", line.sku)
                break
            needed[line.sku] += line.qty - line.cancelled_qty
        if problem is None:
            for sku, qty in needed.items():
                if self.total_available(sku) < qty:
                    problem = ("OUT_OF_STOCK", sku)
                    break
        live = [line for line in order.lines if line.status != "CANCELLED"]
        if problem is not None:
            for line in live:
                line.status, line.status_description = (
                    "REJECTED",
                    problem[0] if line.sku == problem[1] else "REJECTED",
                )
            order.status = "REJECTED"
        else:
            for line in live:
                before = self.total_available(line.sku)
                remaining = line.qty - line.cancelled_qty
                for node, stock in self.stock[line.sku].items():
                    take = min(remaining, stock.avail)
                    if take:
                        stock.reserved += take
                        line.reserved_at[node] = line.reserved_at.get(node, 0) + take
                        remaining -= take
                line.status, line.status_description = "PROCESSING", "SUCCESSFULLY_SOURCED"
                self._after_stock_change(line.sku, before)
            order.status = "ACCEPTED" if live else "CANCELLED"
        logger.info(
            "walmart emulator MCS order sourced",
            extra={"seller_order_id": order.seller_order_id, "status": order.status},
        )
        self._emit("ORDER_STATUS_UPDATE", self._mcs_event(order))

    def _mcs_event(self, order: FulfilmentOrder) -> dict[str, Any]:
        """An MCS webhook payload; statuses as the webhooks name them (Acknowledged, Shipped, Canceled)."""
        return {
            "partnerId": self.partner_id,
            "originSystemOrderId": order.seller_order_id,
            "orderChannelId": order.order_channel_id,
            "status": MCS_EVENT_STATUS.get(order.status, order.status),
            "lineItemStatus": [
                {
                    "sellerLineId": line.seller_line_id,
                    "itemDetail": {"sku": line.sku},
                    "itemStatus": [
                        {
                            "qty": {"unitOfMeasure": UNIT, "measurementValue": line.qty},
                            "status": MCS_EVENT_STATUS.get(line.status, line.status),
                        }
                    ],
                }
                for line in order.lines
            ],
            "shipmentDetails": list(order.shipments),
        }

    def fulfilment(
        self, *, seller_order_id: str | None = None, request_id: str | None = None
    ) -> FulfilmentOrder | None:
        with self.lock:
            self.process_due()
            if request_id is not None:
                seller_order_id = self.fulfilment_requests.get(request_id)
            return self.fulfilments.get(seller_order_id) if seller_order_id else None

    def fulfilments_between(self, start: float, end: float) -> list[FulfilmentOrder]:
        with self.lock:
            self.process_due()
            return [
                o
                for o in self.fulfilments.values()
                if start <= (_parse_time(o.order_placed_time) or o.created_at) < end
            ]

    def fulfilment_json(self, order: FulfilmentOrder) -> dict[str, Any]:
        with self.lock:
            return {
                "sellerOrderId": order.seller_order_id,
                "requestId": order.request_id,
                "orderChannelId": order.order_channel_id,
                "orderDate": order.order_placed_time,
                "status": order.status,
                "customer": order.customer,
                "orderLines": [
                    {
                        "sellerLineId": line.seller_line_id,
                        "itemDetail": {"sku": line.sku},
                        "orderLineQuantityInfo": [
                            {
                                "status": line.status,
                                "statusDescription": line.status_description,
                                "statusQuantity": {
                                    "unitOfMeasure": UNIT,
                                    "measurementValue": line.qty - line.cancelled_qty,
                                },
                            }
                        ]
                        + (
                            [
                                {
                                    "status": "CANCELLED",
                                    "statusDescription": "CANCELLED_BY_SELLER",
                                    "statusQuantity": {
                                        "unitOfMeasure": UNIT,
                                        "measurementValue": line.cancelled_qty,
                                    },
                                }
                            ]
                            if line.cancelled_qty and line.status != "CANCELLED"
                            else []
                        ),
                        "shippingMethod": line.shipping_method,
                        "shippingTier": line.shipping_method,
                    }
                    for line in order.lines
                ],
                "shipments": list(order.shipments),
            }

    def cancel_fulfilment(
        self, seller_order_id: str, lines: list[tuple[str, int | None]] | None
    ) -> FulfilmentOrder:
        """Cancel whole lines or quantities of not-yet-shipped lines (all of them when `lines` is None)."""
        with self.lock:
            self.process_due()
            order = self.fulfilments.get(seller_order_id)
            if order is None:
                raise WalmartError.mcs(
                    404, "OS_NOT_FOUND_ERROR", f"Order {seller_order_id} not found", field="sellerOrderId"
                )
            by_id = {line.seller_line_id: line for line in order.lines}
            wanted = lines if lines is not None else [(line.seller_line_id, None) for line in order.lines]
            for line_id, _ in wanted:
                line = by_id.get(line_id)
                if line is None:
                    raise _invalid(
                        "sellerLineId", f"Unknown sellerLineId {line_id}", code="INVALID_MCS_REQUEST"
                    )
                if line.shipped_qty or line.status in ("SHIPPED", "DELIVERED"):
                    raise _invalid(
                        "sellerLineId",
                        f"Line {line_id} has shipped and cannot be cancelled",
                        code="INVALID_MCS_REQUEST",
                    )
            for line_id, qty in wanted:
                line = by_id[line_id]
                if line.status in ("CANCELLED", "REJECTED"):
                    continue
                open_qty = line.qty - line.cancelled_qty
                cancel = open_qty if qty is None else min(qty, open_qty)
                line.cancelled_qty += cancel
                release = cancel
                for node, held in list(line.reserved_at.items()):
                    give = min(release, held)
                    self.stock[line.sku][node].reserved -= give
                    line.reserved_at[node] = held - give
                    release -= give
                if line.cancelled_qty >= line.qty:
                    line.status, line.status_description = "CANCELLED", "CANCELLED_BY_SELLER"
            if (
                all(line.status in ("CANCELLED", "REJECTED") for line in order.lines)
                and order.status != "REJECTED"
            ):
                order.status = "CANCELLED"
            self._emit("ORDER_STATUS_UPDATE", self._mcs_event(order))
            return order

    def ship_fulfilment(
        self, seller_order_id: str, *, tracking_number: str = "1Z999AA10123456784"
    ) -> FulfilmentOrder:
        """Ship every open line of an accepted MCS order (a test helper; Walmart does this in its FCs)."""
        with self.lock:
            self.process_due()
            order = self.fulfilments[seller_order_id]
            if order.status != "ACCEPTED":
                raise ValueError(f"order {seller_order_id} is {order.status}, not ACCEPTED")
            now = self.clock()
            shipment_lines = []
            for line in order.lines:
                if line.status != "PROCESSING":
                    continue
                line.shipped_qty = line.qty - line.cancelled_qty
                line.status, line.status_description = "SHIPPED", "SHIPPED"
                for node, held in line.reserved_at.items():
                    self.stock[line.sku][node].reserved -= held
                    self.stock[line.sku][node].input_qty -= held
                line.reserved_at.clear()
                shipment_lines.append(
                    {
                        "fulfillerLineId": line.seller_line_id,
                        "quantity": {"unitOfMeasure": UNIT, "measurementValue": line.shipped_qty},
                    }
                )
            order.status = "SHIPPED"
            order.shipments.append(
                {
                    "status": "SHIPPED",
                    "purchaseOrderId": str(next(self._po_numbers)),
                    "scac": "UPSN",
                    "trackingNo": tracking_number,
                    "externalTrackingURL": f"https://www.walmart.com/tracking?tracking_id={tracking_number}",
                    "shipmentNo": str(len(order.shipments) + 1),
                    "actualShipmentDate": iso_ms(now),
                    "carrierServiceCode": "GROUND",
                    "shipmentLines": shipment_lines,
                    "shipmentDates": [{"dateTypeId": "SHIPPED", "actualDate": iso_ms(now)}],
                }
            )
            self._emit("ORDER_SHIPMENT_UPDATE", self._mcs_event(order))
            self._emit("ORDER_STATUS_UPDATE", self._mcs_event(order))
            return order


def _invalid(
    field: str, description: str, *, code: str = "ERR_EXT_DATA_0021001", info: str = ""
) -> WalmartError:
    return WalmartError.mcs(
        400,
        code,
        description,
        field=field,
        info=info or f"[Error [code=400.WSAAS.106, field={field}, description={description}]]",
    )


def _parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _fulfilment_line(entry: Any, position: int, seen: set[str]) -> FulfilmentLine:
    where = f"orderItems[{position}]"
    if not isinstance(entry, dict):
        raise _invalid(where, "each order item must be an object")
    line_id = entry.get("sellerLineId")
    if not isinstance(line_id, str) or not line_id or len(line_id) > MAX_SELLER_LINE_ID:
        raise _invalid(
            f"{where}.sellerLineId", f"sellerLineId is required, at most {MAX_SELLER_LINE_ID} characters"
        )
    if line_id in seen:
        raise _invalid(f"{where}.sellerLineId", f"duplicate sellerLineId {line_id}")
    if entry.get("fulfillmentType", "DELIVERY") != "DELIVERY":
        raise _invalid(f"{where}.fulfillmentType", "fulfillmentType must be DELIVERY")
    method = entry.get("shippingMethod", "STANDARD")
    if method not in ("STANDARD", "EXPEDITED", "RUSH"):
        raise _invalid(f"{where}.shippingMethod", "shippingMethod must be STANDARD, EXPEDITED or RUSH")
    detail = entry.get("itemDetail")
    sku = detail.get("sku") if isinstance(detail, dict) else None
    if not isinstance(sku, str) or not sku:
        raise _invalid(f"{where}.itemDetail.sku", "itemDetail.sku is required")
    qty = entry.get("qty")
    value = qty.get("measurementValue") if isinstance(qty, dict) else None
    if not isinstance(qty, dict) or qty.get("unitOfMeasure") != UNIT:
        raise _invalid(f"{where}.qty.unitOfMeasure", "qty.unitOfMeasure must be EACH")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _invalid(f"{where}.qty.measurementValue", "qty.measurementValue must be a positive integer")
    charges = entry.get("chargeDetails")
    if not isinstance(charges, list) or not charges:
        raise _invalid(f"{where}.chargeDetails", "chargeDetails is required")
    shipping = entry.get("shippingTo")
    if not isinstance(shipping, dict) or not isinstance(shipping.get("contact"), dict):
        raise _invalid(f"{where}.shippingTo.contact", "shippingTo.contact is required")
    address = shipping.get("address")
    if not isinstance(address, dict):
        raise _invalid(f"{where}.shippingTo.address", "shippingTo.address is required")
    for key, check, rule in (
        ("line1", lambda v: bool(v), "is required"),
        ("city", lambda v: bool(v), "is required"),
        ("state", lambda v: len(v) == 2, "must be 2 characters"),
        ("zip", lambda v: len(v) == 5, "must be 5 characters"),
        ("country", lambda v: 0 < len(v) <= 3, "must be at most 3 characters"),
    ):
        value_ = address.get(key)
        if not isinstance(value_, str) or not check(value_):
            raise _invalid(f"{where}.shippingTo.address.{key}", f"address.{key} {rule}")
    phone = shipping["contact"].get("phone")
    if phone is not None and (not isinstance(phone, str) or len(phone) > 15):
        raise _invalid(f"{where}.shippingTo.contact.phone", "phone must be at most 15 characters")
    return FulfilmentLine(line_id, sku, value, method)
