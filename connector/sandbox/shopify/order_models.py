"""The emulated store's order records (orders, their line items and transactions, and the job an order
cancellation runs as) and how each answers GraphQL fields, as in `models`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from connector.sandbox.shopify.models import (
    Product,
    ProductVariant,
    Record,
    gid,
    money_bag,
    page_args,
    paginate,
)

if TYPE_CHECKING:
    from connector.sandbox.shopify.store import Context


@dataclass(eq=False)
class LineItem(Record):
    typename: ClassVar[str] = "LineItem"
    legacy_resource_id: int
    title: str
    variant_title: str | None
    sku: str | None
    vendor: str | None
    quantity: int
    price: Decimal
    variant: ProductVariant | None
    tax_lines: list[dict[str, Any]]
    requires_shipping: bool = True
    taxable: bool = True
    fulfilled_quantity: int = 0
    refunded_quantity: int = 0
    committed: int = 0  # claimed from stock and not shipped yet
    consumed: int = 0  # shipped from claimed stock

    @property
    def product(self) -> Product | None:
        return self.variant.product if self.variant else None

    @property
    def name(self) -> str:
        return f"{self.title} - {self.variant_title}" if self.variant_title else self.title

    def gql_current_quantity(self, ctx: Context, **_: Any) -> int:
        return self.quantity - self.refunded_quantity

    def gql_unfulfilled_quantity(self, ctx: Context, **_: Any) -> int:
        return max(0, self.quantity - self.refunded_quantity - self.fulfilled_quantity)

    def gql_original_total_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.price * self.quantity, ctx.store.shop.currency_code)

    def gql_original_unit_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.price, ctx.store.shop.currency_code)

    def gql_tax_lines(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [_tax_line(line, ctx.store.shop.currency_code) for line in self.tax_lines]


def _tax_line(line: dict[str, Any], currency: str) -> dict[str, Any]:
    rate = float(line["rate"])
    return {
        "title": line["title"],
        "rate": rate,
        "ratePercentage": round(rate * 100, 4),
        "priceSet": money_bag(line["price"], currency),
        "source": None,
        "channelLiable": bool(line.get("channel_liable")),
    }


@dataclass(eq=False)
class Transaction(Record):
    typename: ClassVar[str] = "OrderTransaction"
    legacy_resource_id: int
    kind: str
    status: str
    gateway: str
    amount: Decimal
    created_at: datetime
    processed_at: datetime
    test: bool = False

    def gql_amount_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.amount, ctx.store.shop.currency_code)


@dataclass(eq=False)
class Order(Record):
    typename: ClassVar[str] = "Order"
    legacy_resource_id: int
    number: int
    email: str | None
    currency_code: str
    line_items: list[LineItem]
    tax_lines: list[dict[str, Any]]
    shipping_lines: list[dict[str, Any]]
    transactions: list[Transaction]
    shipping_address: dict[str, Any] | None
    billing_address: dict[str, Any] | None
    tags: list[str]
    source_identifier: str | None
    source_name: str | None
    note: str | None
    taxes_included: bool
    test: bool
    created_at: datetime
    updated_at: datetime
    processed_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    closed_at: datetime | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)
    custom_attributes: list[dict[str, str]] = field(default_factory=list)
    fulfillments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"#{self.number}"

    @property
    def subtotal(self) -> Decimal:
        return sum((line.price * line.quantity for line in self.line_items), Decimal(0))

    @property
    def total_tax(self) -> Decimal:
        own = sum((Decimal(str(line["price"])) for line in self.tax_lines), Decimal(0))
        items = sum(
            (Decimal(str(tax["price"])) for line in self.line_items for tax in line.tax_lines), Decimal(0)
        )
        return own + items

    @property
    def total_shipping(self) -> Decimal:
        return sum((Decimal(str(line["price"])) for line in self.shipping_lines), Decimal(0))

    @property
    def total_price(self) -> Decimal:
        tax = Decimal(0) if self.taxes_included else self.total_tax
        return self.subtotal + tax + self.total_shipping

    @property
    def received(self) -> Decimal:
        paid = sum(
            (t.amount for t in self.transactions if t.kind in ("SALE", "CAPTURE") and t.status == "SUCCESS"),
            Decimal(0),
        )
        refunded = sum(
            (t.amount for t in self.transactions if t.kind == "REFUND" and t.status == "SUCCESS"), Decimal(0)
        )
        return paid - refunded

    @property
    def refunded(self) -> Decimal:
        return sum(
            (t.amount for t in self.transactions if t.kind == "REFUND" and t.status == "SUCCESS"), Decimal(0)
        )

    @property
    def financial_status(self) -> str:
        refunded = self.refunded
        if refunded > 0:
            return "REFUNDED" if refunded >= self.total_price else "PARTIALLY_REFUNDED"
        paid = self.received
        if (
            paid >= self.total_price
            and self.total_price >= 0
            and any(t.kind in ("SALE", "CAPTURE") for t in self.transactions)
        ):
            return "PAID"
        if any(t.kind == "AUTHORIZATION" and t.status == "SUCCESS" for t in self.transactions):
            return "AUTHORIZED"
        if paid > 0:
            return "PARTIALLY_PAID"
        return "PENDING"

    @property
    def fulfillment_status(self) -> str:
        done = sum(line.fulfilled_quantity for line in self.line_items)
        if done > 0 and all(
            line.fulfilled_quantity + line.refunded_quantity >= line.quantity for line in self.line_items
        ):
            return "FULFILLED"
        if done > 0:
            return "PARTIALLY_FULFILLED"
        return "UNFULFILLED"

    def gql_line_items(self, ctx: Context, **args: Any) -> dict[str, Any]:
        return paginate(self.line_items, ctx, **page_args(args))

    def gql_transactions(self, ctx: Context, first: int | None = None, **_: Any) -> list[Transaction]:
        return self.transactions[:first] if first is not None else list(self.transactions)

    def gql_tax_lines(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [_tax_line(line, self.currency_code) for line in self.tax_lines]

    def gql_display_financial_status(self, ctx: Context, **_: Any) -> str:
        return self.financial_status

    def gql_display_fulfillment_status(self, ctx: Context, **_: Any) -> str:
        return self.fulfillment_status

    def gql_closed(self, ctx: Context, **_: Any) -> bool:
        return self.closed_at is not None

    def gql_fully_paid(self, ctx: Context, **_: Any) -> bool:
        return self.received >= self.total_price

    def gql_unpaid(self, ctx: Context, **_: Any) -> bool:
        return self.received <= 0

    def gql_confirmed(self, ctx: Context, **_: Any) -> bool:
        return True

    def gql_subtotal_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.subtotal, self.currency_code)

    def gql_total_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_price, self.currency_code)

    def gql_current_total_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_price - self.refunded, self.currency_code)

    def gql_total_tax_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_tax, self.currency_code)

    def gql_total_shipping_price_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.total_shipping, self.currency_code)

    def gql_total_received_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.received, self.currency_code)

    def gql_total_refunded_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(self.refunded, self.currency_code)

    def gql_total_outstanding_set(self, ctx: Context, **_: Any) -> dict[str, Any]:
        return money_bag(max(Decimal(0), self.total_price - self.received), self.currency_code)

    def gql_shipping_address(self, ctx: Context, **_: Any) -> dict[str, Any] | None:
        return _address(self.shipping_address, self.legacy_resource_id)

    def gql_billing_address(self, ctx: Context, **_: Any) -> dict[str, Any] | None:
        return _address(self.billing_address, self.legacy_resource_id + 1)

    def gql_cancelled_at(self, ctx: Context, **_: Any) -> datetime | None:
        return self.cancelled_at

    def gql_refunds(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": gid("Refund", refund["id"]),
                "createdAt": refund["created_at"],
                "note": refund.get("note"),
                "totalRefundedSet": money_bag(refund["amount"], self.currency_code),
                "legacyResourceId": str(refund["id"]),
            }
            for refund in self.refunds
        ]

    def gql_fulfillments(self, ctx: Context, **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": gid("Fulfillment", f["id"]),
                "status": "SUCCESS",
                "createdAt": f["created_at"],
                "updatedAt": f["created_at"],
                "name": f"{self.name}-F{i}",
                "legacyResourceId": str(f["id"]),
                "trackingInfo": [
                    {"company": f.get("tracking_company"), "number": f.get("tracking_number"), "url": None}
                ],
            }
            for i, f in enumerate(self.fulfillments, start=1)
        ]

    def gql_subtotal_line_items_quantity(self, ctx: Context, **_: Any) -> int:
        return sum(line.quantity for line in self.line_items)

    def gql_payment_gateway_names(self, ctx: Context, **_: Any) -> list[str]:
        return sorted({t.gateway for t in self.transactions})


def _address(address: dict[str, Any] | None, number: int) -> dict[str, Any] | None:
    if address is None:
        return None
    shown = dict(address)
    shown.setdefault("id", gid("MailingAddress", f"{number}?model_name=Address"))
    shown.setdefault("name", " ".join(filter(None, (address.get("firstName"), address.get("lastName")))))
    shown.setdefault("coordinatesValidated", False)
    shown.setdefault("formattedArea", None)
    return shown


@dataclass(eq=False)
class Job:
    typename: ClassVar[str] = "Job"
    id: str
    done: bool = False
    status: str = "STARTED"
    order: Order | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    run_at: float = 0.0

    def gql_query(self, ctx: Context, **_: Any) -> object | None:
        return ctx if self.done else None
