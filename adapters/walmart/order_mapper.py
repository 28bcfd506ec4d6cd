"""Pure functions between Walmart's order JSON and Storelink's domain types: purchase orders placed on Walmart
read into `WalmartOrder`, and Multichannel Solutions orders written (payload, cancellation) and their status
and sales channels read. Nothing here calls the network."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from adapters.walmart import const
from adapters.walmart.mapper import epoch_ms, quantity, ref, text
from connector.domain.orders import Address, Order

_ALNUM = re.compile(r"[A-Za-z0-9]*")
_COUNTRIES: Final = {"US": "USA", "USA": "USA", "PR": "PRI", "PRI": "PRI"}


@dataclass(frozen=True, slots=True)
class WalmartOrderLine:
    line_number: str
    sku: str
    quantity: int
    statuses: tuple[tuple[str, int], ...] = ()
    """(status, quantity) entries of the line: one line can be split over several statuses."""

    @property
    def cancelled_quantity(self) -> int:
        return sum(amount for status, amount in self.statuses if status.upper() == "CANCELLED")


@dataclass(frozen=True, slots=True)
class WalmartOrder:
    """A purchase order placed on Walmart: what the platform side needs to lower its stock."""

    purchase_order_id: str
    customer_order_id: str | None
    ordered_at: datetime | None
    lines: tuple[WalmartOrderLine, ...]
    ship_node_type: str | None = None

    @property
    def order_ref(self) -> str:
        return self.purchase_order_id

    def sku_quantities(self, *, exclude_cancelled: bool = True) -> dict[str, int]:
        """Units per SKU (cancelled units left out unless asked)."""
        totals: dict[str, int] = {}
        for line in self.lines:
            amount = line.quantity - (line.cancelled_quantity if exclude_cancelled else 0)
            if amount > 0:
                totals[line.sku] = totals.get(line.sku, 0) + amount
        return totals


def _list_of(container: object, *keys: str) -> list[Any]:
    """`container[k1][k2]...` when it is a list (a single object taken as a list of one)."""
    value = container
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return [value]
    return list(value) if isinstance(value, list) else []


def parse_order(order: Mapping[str, Any]) -> WalmartOrder:
    """One `order` of `GET /v3/orders`; ValueError when unusable."""
    po = ref(order.get("purchaseOrderId"), "purchaseOrderId")
    lines: list[WalmartOrderLine] = []
    for line in _list_of(order, "orderLines", "orderLine"):
        if not isinstance(line, Mapping):
            continue
        item = line.get("item")
        sku = ref(item.get("sku") if isinstance(item, Mapping) else None, f"{po} line sku")
        number = text(line.get("lineNumber")) or str(len(lines) + 1)
        statuses: list[tuple[str, int]] = []
        for entry in _list_of(line, "orderLineStatuses", "orderLineStatus"):
            if isinstance(entry, Mapping) and text(entry.get("status")):
                try:
                    amount = quantity(entry.get("statusQuantity"))
                except ValueError:
                    amount = 0
                statuses.append((str(text(entry.get("status"))), amount))
        lines.append(
            WalmartOrderLine(
                line_number=number,
                sku=sku,
                quantity=max(0, quantity(line.get("orderLineQuantity"))),
                statuses=tuple(statuses),
            )
        )
    ship_node = order.get("shipNode")
    return WalmartOrder(
        purchase_order_id=po,
        customer_order_id=text(order.get("customerOrderId")),
        ordered_at=epoch_ms(order.get("orderDate")),
        lines=tuple(lines),
        ship_node_type=text(ship_node.get("type")) if isinstance(ship_node, Mapping) else None,
    )


def orders_of(page: object) -> Iterator[Mapping[str, Any]]:
    """The orders of a `GET /v3/orders` page: `list.elements.order[]`."""
    for order in _list_of(page, "list", "elements", "order"):
        if isinstance(order, Mapping):
            yield order


def seller_order_id(idempotency_key: str, prefix: str = const.DEFAULT_SELLER_ORDER_PREFIX) -> str:
    """A deterministic `sellerOrderId` for a key: `prefix` and the start of the key's SHA-256 in base32,
    18 characters of [A-Z0-9] in all."""
    if not _ALNUM.fullmatch(prefix) or len(prefix) > 6:
        raise ValueError("seller order prefix must be at most 6 letters or digits")
    digest = base64.b32encode(hashlib.sha256(idempotency_key.encode("utf-8")).digest()).decode("ascii")
    return (prefix.upper() + digest)[: const.SELLER_ORDER_ID_LENGTH]


def mcs_header() -> dict[str, Any]:
    return {"headerAttributes": {"martId": const.MCS_MART_ID, "buId": const.MCS_BU_ID}}


def _name(full: str) -> dict[str, str]:
    first, _, last = full.strip().partition(" ")
    return {"firstName": first or full.strip(), "lastName": last.strip() or first or full.strip()}


def _address(address: Address) -> dict[str, str]:
    country = _COUNTRIES.get(address.country_code.upper())
    if country is None:
        raise ValueError(f"Walmart Multichannel ships within the US only, not to {address.country_code!r}")
    state = address.province_code.strip().upper()
    if len(state) != 2:
        raise ValueError("shipping address needs a 2-letter state code")
    zip_code = address.postal_code.strip()[:5]
    if len(zip_code) != 5 or not zip_code.isdigit():
        raise ValueError(f"shipping address postal code {address.postal_code!r} is not a US ZIP code")
    found = {
        "line1": address.line1.strip(),
        "city": address.city.strip(),
        "state": state,
        "country": country,
        "zip": zip_code,
        "addressType": "RESIDENTIAL",
    }
    if address.line2.strip():
        found["line2"] = address.line2.strip()
    if not found["line1"] or not found["city"]:
        raise ValueError("shipping address needs a street line and a city")
    return found


def mcs_order_payload(
    order: Order,
    seller_order: str,
    channel_id: str,
    placed_at: datetime,
    shipping_method: str = "STANDARD",
) -> dict[str, Any]:
    """The `POST /v3/fulfillment/orders-fulfillments` body of a platform order; ValueError when the order
    cannot be fulfilled through Multichannel (no US address, too many lines).

    Charges are sent as 0: Walmart's preferred value, they are informational and billed to no one.
    """
    address = order.shipping_address
    if address is None:
        raise ValueError("a Multichannel order needs a shipping address")
    if not order.lines:
        raise ValueError("order has no lines")
    if len(order.lines) > const.MAX_SELLER_LINE_ID:
        raise ValueError("order has too many lines")
    contact: dict[str, Any] = {"name": _name(address.name)}
    phone = "".join(ch for ch in address.phone if ch.isdigit() or ch == "+")[:15]
    if phone:
        contact["phone"] = phone
    if order.buyer_email:
        contact["email"] = order.buyer_email
    shipping_to = {"contact": contact, "address": _address(address)}
    items = []
    for number, line in enumerate(order.lines, start=1):
        if line.quantity <= 0:
            raise ValueError(f"line {number} has quantity {line.quantity}")
        items.append(
            {
                "sellerLineId": str(number),
                "fulfillmentType": "DELIVERY",
                "shippingMethod": shipping_method,
                "itemDetail": {"sku": line.variant_external_id},
                "qty": {"unitOfMeasure": "EACH", "measurementValue": line.quantity},
                "shippingTo": shipping_to,
                "chargeDetails": [
                    {
                        "chargeCategory": "PRODUCT",
                        "chargeName": "Sale Price",
                        "chargePerUnit": {"currencyAmount": 0, "currencyUnit": order.currency},
                        "taxDetails": {"taxPerLine": {"currencyAmount": 0, "currencyUnit": order.currency}},
                    }
                ],
            }
        )
    stamp = placed_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "header": mcs_header(),
        "payload": {
            "orderChannelId": channel_id,
            "sellerOrderId": seller_order,
            "orderPlacedTime": stamp,
            "needsConfirmation": False,
            "partialFulfillments": False,
            "customer": {"contact": contact},
            "orderItems": items,
        },
    }


@dataclass(frozen=True, slots=True)
class McsStatus:
    """A Multichannel order as the status endpoint reports it."""

    seller_order_id: str
    status: str
    purchase_order_ids: tuple[str, ...] = ()
    lines: tuple[tuple[str, int], ...] = ()
    """(sellerLineId, quantity) of its lines, as far as the answer names them."""

    @property
    def rejected(self) -> bool:
        return self.status in const.MCS_REJECTED_STATUSES

    @property
    def cancelled(self) -> bool:
        return self.status in const.MCS_CANCELLED_STATUSES

    @property
    def pending(self) -> bool:
        return self.status in const.MCS_PENDING_STATUSES or not self.status


def _line_quantity(line: Mapping[str, Any]) -> int | None:
    for key in ("qty", "orderedQty", "orderLineQuantity", "quantity"):
        if key in line:
            try:
                return quantity(line[key])
            except ValueError:
                return None
    total = 0
    for info in _list_of(line, "orderLineQuantityInfo"):
        if isinstance(info, Mapping):
            for key in ("statusQuantity", "qty", "quantity"):
                if key in info:
                    with contextlib.suppress(ValueError):
                        total += quantity(info[key])
                    break
    return total or None


def mcs_status(body: object, seller_order: str) -> McsStatus | None:
    """The entry of a status answer (`payload[]`) for `seller_order`; None when it has none."""
    entries = _list_of(body, "payload")
    if not entries and isinstance(body, Mapping):
        entries = _list_of(body, "payload", "orders")
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        found = text(entry.get("sellerOrderId") or entry.get("customerOrderNo"))
        if found != seller_order:
            continue
        purchase_orders = []
        for shipment in _list_of(entry, "shipments"):
            if isinstance(shipment, Mapping) and text(shipment.get("purchaseOrderId")):
                purchase_orders.append(str(text(shipment.get("purchaseOrderId"))))
        lines: list[tuple[str, int]] = []
        for line in _list_of(entry, "orderLines"):
            if not isinstance(line, Mapping):
                continue
            line_id = text(line.get("sellerLineId") or line.get("lineId") or line.get("fulfillerLineId"))
            amount = _line_quantity(line)
            if line_id and amount:
                lines.append((line_id, amount))
        return McsStatus(
            seller_order_id=seller_order,
            status=str(text(entry.get("status") or entry.get("orderStatus")) or "").upper(),
            purchase_order_ids=tuple(dict.fromkeys(purchase_orders)),
            lines=tuple(lines),
        )
    return None


def mcs_cancel_payload(seller_order: str, lines: Sequence[tuple[str, int]]) -> dict[str, Any]:
    return {
        "header": mcs_header(),
        "payload": {
            "sellerOrderId": seller_order,
            "orderItems": [
                {"sellerLineId": line_id, "qty": {"unitOfMeasure": "EACH", "measurementValue": amount}}
                for line_id, amount in lines
            ],
        },
    }


def channels(body: object) -> list[tuple[str, str | None, bool]]:
    """(orderChannelId, orderChannelName, active) of a channel-details answer."""
    found: list[tuple[str, str | None, bool]] = []
    candidates = (
        _list_of(body, "payload", "mcsDetails") or _list_of(body, "mcsDetails") or _list_of(body, "payload")
    )
    for entry in candidates:
        if not isinstance(entry, Mapping):
            continue
        channel_id = text(entry.get("orderChannelId"))
        if channel_id:
            found.append((channel_id, text(entry.get("orderChannelName")), entry.get("active") is not False))
    return found
