"""Walmart-originated purchase orders in the emulator: their `GET /v3/orders` JSON (research §4.2: lineNumber
and quantity amounts as strings, dates as epoch ms, statuses on order lines with split quantities) and the
seller's actions on them, ship (`POST /v3/orders/{po}/shipping`) and cancel (`POST /v3/orders/{po}/cancel`),
validated as research §4.3 describes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.walmart.envelopes import WalmartError

EACH = "EACH"
LINE_STATUSES = ("Created", "Acknowledged", "Shipped", "Delivered", "Cancelled", "Refund")
OPEN = ("Created", "Acknowledged")
CARRIERS = (
    "UPS",
    "USPS",
    "FedEx",
    "Airborne",
    "OnTrac",
    "DHL",
    "DHL Ecommerce - US",
    "LS",
    "UDS",
    "UPSMI",
    "FDX",
    "PILOT",
    "ESTES",
    "SAIA",
)
METHOD_CODES = ("Standard", "Express", "OneDay", "Freight", "WhiteGlove", "Value")
CANCELLATION_REASONS = (
    "CUSTOMER_REQUESTED_SELLER_TO_CANCEL",
    "SELLER_CANCEL_PRICING_ERROR",
    "SELLER_CANCEL_OUT_OF_STOCK",
    "SELLER_CANCEL_FRAUD_STOP_SHIPMENT",
    "SELLER_CANCEL_ADDRESS_NOT_SERVICEABLE",
)
MAX_SHIP_SELLER_ORDER_ID = 30


@dataclass(slots=True)
class LineStatus:
    """One `orderLineStatus` entry: a status for part (or all) of a line's quantity."""

    status: str
    qty: int
    tracking: dict[str, Any] | None = None
    cancellation_reason: str | None = None


@dataclass(slots=True)
class OrderLine:
    line_number: str
    sku: str
    product_name: str
    qty: int
    price: float
    status_date: int
    statuses: list[LineStatus] = field(default_factory=list)

    def quantity_in(self, *statuses: str) -> int:
        return sum(entry.qty for entry in self.statuses if entry.status in statuses)

    def move(self, qty: int, to: LineStatus, status_date: int) -> None:
        """Take `qty` units from the open (Created, then Acknowledged) entries into `to`."""
        remaining = qty
        for entry in sorted(self.statuses, key=lambda e: OPEN.index(e.status) if e.status in OPEN else 9):
            if entry.status not in OPEN or not remaining:
                continue
            take = min(entry.qty, remaining)
            entry.qty -= take
            remaining -= take
        self.statuses = [entry for entry in self.statuses if entry.qty > 0]
        self.statuses.append(to)
        self.status_date = status_date


@dataclass(slots=True)
class Order:
    """A purchase order placed on Walmart.com."""

    purchase_order_id: str
    customer_order_id: str
    order_date: int
    lines: list[OrderLine]
    ship_node_type: str = "SellerFulfilled"
    ship_node_id: str = ""
    last_modified: int = 0
    name: str = "Kathryn Cole"
    address1: str = "3258 Warners Rd"
    city: str = "Warners"
    state: str = "NY"
    postal_code: str = "13164"
    phone: str = "3155598681"

    def line(self, line_number: Any) -> OrderLine:
        for line in self.lines:
            if line.line_number == line_number:
                return line
        raise _bad("lineNumber", f"Order {self.purchase_order_id} has no line {line_number}")

    def to_json(self) -> dict[str, Any]:
        total = round(sum(line.price * line.qty for line in self.lines), 2)
        return {
            "purchaseOrderId": self.purchase_order_id,
            "customerOrderId": self.customer_order_id,
            "customerEmailId": f"{uuid.UUID(int=int(self.purchase_order_id)).hex.upper()}@relay.walmart.com",
            "orderType": "REGULAR",
            "originalCustomerOrderID": None,
            "orderDate": self.order_date,
            "shippingInfo": {
                "phone": self.phone,
                "estimatedDeliveryDate": self.order_date + 5 * 86_400_000,
                "estimatedShipDate": self.order_date + 2 * 86_400_000,
                "methodCode": "Standard",
                "postalAddress": {
                    "name": self.name,
                    "address1": self.address1,
                    "address2": None,
                    "city": self.city,
                    "state": self.state,
                    "postalCode": self.postal_code,
                    "country": "USA",
                    "addressType": "RESIDENTIAL",
                },
            },
            "orderLines": {"orderLine": [self._line_json(line) for line in self.lines]},
            "orderSummary": {"totalAmount": {"currency": "USD", "amount": total}},
            "shipNode": {"type": self.ship_node_type, "name": "Seller warehouse", "id": self.ship_node_id},
        }

    def _line_json(self, line: OrderLine) -> dict[str, Any]:
        return {
            "lineNumber": line.line_number,
            "item": {"productName": line.product_name, "sku": line.sku},
            "charges": {
                "charge": [
                    {
                        "chargeType": "PRODUCT",
                        "chargeName": "ItemPrice",
                        "chargeAmount": {"currency": "USD", "amount": line.price},
                        "tax": None,
                    }
                ]
            },
            "orderLineQuantity": {"unitOfMeasurement": EACH, "amount": str(line.qty)},
            "statusDate": line.status_date,
            "orderLineStatuses": {
                "orderLineStatus": [
                    {
                        "status": entry.status,
                        "statusQuantity": {"unitOfMeasurement": EACH, "amount": str(entry.qty)},
                        "cancellationReason": entry.cancellation_reason,
                        "trackingInfo": entry.tracking,
                        "returnCenterAddress": None,
                    }
                    for entry in line.statuses
                ]
            },
            "refund": None,
            "fulfillment": {
                "fulfillmentOption": "S2H",
                "shipMethod": "STANDARD",
                "storeId": None,
                "pickUpDateTime": self.order_date + 3 * 86_400_000,
                "pickUpBy": None,
            },
        }


def _bad(field: str, description: str) -> WalmartError:
    return WalmartError.bad_content(field, description)


def _lines(body: Any, root: str) -> list[dict[str, Any]]:
    document = body.get(root) if isinstance(body, dict) else None
    holder = document.get("orderLines") if isinstance(document, dict) else None
    lines = holder.get("orderLine") if isinstance(holder, dict) else None
    if not isinstance(lines, list) or not lines or not all(isinstance(line, dict) for line in lines):
        raise _bad(f"{root}.orderLines.orderLine", f"{root}.orderLines.orderLine is required")
    return lines


def _statuses(line: dict[str, Any], where: str) -> list[dict[str, Any]]:
    holder = line.get("orderLineStatuses")
    entries = holder.get("orderLineStatus") if isinstance(holder, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise _bad(f"{where}.orderLineStatuses", "orderLineStatuses.orderLineStatus is required")
    return entries


def _amount(entry: dict[str, Any], where: str) -> int:
    quantity = entry.get("statusQuantity")
    raw = quantity.get("amount") if isinstance(quantity, dict) else None
    text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not text.isdigit() or int(text) <= 0:
        raise _bad(f"{where}.statusQuantity.amount", "statusQuantity.amount must be a positive number")
    return int(text)


def apply_shipment(order: Order, body: Any, now_ms: int) -> list[tuple[str, int]]:
    """Validate an `orderShipment` and mark the quantities Shipped; returns the (sku, qty) shipped."""
    requested: list[tuple[OrderLine, int, dict[str, Any]]] = []
    for index, raw in enumerate(_lines(body, "orderShipment")):
        where = f"orderLine[{index}]"
        line = order.line(raw.get("lineNumber"))
        seller_order_id = raw.get("sellerOrderId")
        if not isinstance(seller_order_id, str) or not 0 < len(seller_order_id) <= MAX_SHIP_SELLER_ORDER_ID:
            raise _bad(f"{where}.sellerOrderId", "sellerOrderId is required, at most 30 characters")
        for entry in _statuses(raw, where):
            if entry.get("status") != "Shipped":
                raise _bad(f"{where}.status", "status must be Shipped")
            tracking = entry.get("trackingInfo")
            if not isinstance(tracking, dict):
                raise _bad(f"{where}.trackingInfo", "trackingInfo is required")
            shipped_at = tracking.get("shipDateTime")
            if not isinstance(shipped_at, int) or isinstance(shipped_at, bool):
                raise _bad(f"{where}.trackingInfo.shipDateTime", "shipDateTime must be epoch milliseconds")
            carrier = tracking.get("carrierName")
            if not isinstance(carrier, dict) or not (carrier.get("carrier") or carrier.get("otherCarrier")):
                raise _bad(
                    f"{where}.trackingInfo.carrierName", "carrierName.carrier or otherCarrier is required"
                )
            if carrier.get("carrier") and carrier["carrier"] not in CARRIERS:
                raise _bad(
                    f"{where}.trackingInfo.carrierName.carrier", f"Unknown carrier {carrier['carrier']}"
                )
            if not carrier.get("carrier") and not tracking.get("trackingURL"):
                raise _bad(f"{where}.trackingInfo.trackingURL", "trackingURL is required with otherCarrier")
            if tracking.get("methodCode") not in METHOD_CODES:
                raise _bad(
                    f"{where}.trackingInfo.methodCode", "methodCode is not one of " + ", ".join(METHOD_CODES)
                )
            if not tracking.get("trackingNumber"):
                raise _bad(f"{where}.trackingInfo.trackingNumber", "trackingNumber is required")
            requested.append((line, _amount(entry, where), tracking))
    _check_open(requested)
    for line, qty, tracking in requested:
        stored = {
            "shipDateTime": tracking["shipDateTime"],
            "carrierName": {
                "otherCarrier": tracking["carrierName"].get("otherCarrier"),
                "carrier": tracking["carrierName"].get("carrier"),
            },
            "methodCode": tracking["methodCode"],
            "carrierMethodCode": None,
            "trackingNumber": tracking["trackingNumber"],
            "trackingURL": tracking.get("trackingURL"),
        }
        line.move(qty, LineStatus("Shipped", qty, tracking=stored), now_ms)
    order.last_modified = now_ms
    return [(line.sku, qty) for line, qty, _ in requested]


def apply_cancellation(order: Order, body: Any, now_ms: int) -> list[tuple[str, int]]:
    """Validate an `orderCancellation` and mark the quantities Cancelled; returns the (sku, qty) cancelled."""
    requested: list[tuple[OrderLine, int, str]] = []
    for index, raw in enumerate(_lines(body, "orderCancellation")):
        where = f"orderLine[{index}]"
        line = order.line(raw.get("lineNumber"))
        for entry in _statuses(raw, where):
            if entry.get("status") != "Cancelled":
                raise _bad(f"{where}.status", "status must be Cancelled")
            reason = entry.get("cancellationReason")
            if reason not in CANCELLATION_REASONS:
                raise _bad(f"{where}.cancellationReason", "cancellationReason is not a supported reason")
            requested.append((line, _amount(entry, where), str(reason)))
    _check_open(requested)
    for line, qty, reason in requested:
        line.move(qty, LineStatus("Cancelled", qty, cancellation_reason=reason), now_ms)
    order.last_modified = now_ms
    return [(line.sku, qty) for line, qty, _ in requested]


def _check_open(requested: list[tuple[OrderLine, int, Any]]) -> None:
    wanted: dict[str, int] = {}
    for line, qty, _ in requested:
        wanted[line.line_number] = wanted.get(line.line_number, 0) + qty
        if wanted[line.line_number] > line.quantity_in(*OPEN):
            raise _bad(
                "statusQuantity.amount",
                f"Line {line.line_number} has only {line.quantity_in(*OPEN)} unit(s) that are not shipped or cancelled",
            )
