"""HTTP routes of the /v1 orders resource: checkout, cancellation, lookup and listing.

`POST /orders` needs an `Idempotency-Key` header: the first answer made with a key is answered again to the
same body, and a different body with the key is a 422. Refusals are problem documents with stable codes:
`price_changed` (409, with each line's current price), `insufficient_stock`/`sold_out` (409, with what is
left), `buyer_limit_exceeded` (409), `variant_not_found`/`variant_not_pinned` (422), `pin_not_on_sale` (409),
`store_takes_no_orders` (422: the merchant's store takes no orders), `service_unavailable` (503: Redis is
unreachable; nothing written). `buyer.ref` is normalized for the per-buyer limit (`connector.domain.buyers`).
Every query is scoped to the calling platform client. Stock refusals (sold out, not enough, over the buyer's
limit), which a flash sale answers by the thousand, are access-logged at DEBUG; `/metrics` counts them.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, request, url_for
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.affiliates import attribution
from connector.api.common import (
    ApiError,
    Body,
    PageQuery,
    api_runtime,
    as_utc,
    authenticate,
    authenticate_deferred,
    confirm_deferred_key,
    decode_id_cursor,
    encode_cursor,
    parse_body,
    parse_query,
    plain_text,
    require_client,
)
from connector.api.openapi import MAX_ID, doc
from connector.domain.errors import NotFoundError, RefusedError
from connector.domain.orders import OrderStatus
from connector.infra.runtime import Runtime
from connector.orders import accept, cancel, checkout, queries, refunds
from connector.orders.accept import STORE_TAKES_NO_ORDERS
from connector.stock import counters
from connector.web.context import quiet_access_log
from connector.web.problems import SERVICE_UNAVAILABLE, problem

logger = logging.getLogger(__name__)

bp = Blueprint("api_orders", __name__)


@bp.before_request
def _require_client() -> None:
    """Every route needs a key; creating an order may leave its key generation to the purchase's Lua call."""
    if request.endpoint == "api_orders.create_order":
        authenticate_deferred()
    else:
        require_client()


bp.after_request(confirm_deferred_key)

TAG = "orders"
CURSOR_KIND = "orders"
MAX_LINES = 100
MAX_QUANTITY = 10_000
MAX_AMOUNT = 10**15
MAX_CLICKS = 20
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


STOCK_REFUSALS = frozenset({"sold_out", "insufficient_stock", "buyer_limit_exceeded"})
"""Refusals a flash sale answers by the thousand: counted in `/metrics` by status, access-logged at DEBUG."""


def refused(exc: RefusedError) -> Response:
    """The problem document of a refused checkout or live request."""
    if exc.code in STOCK_REFUSALS:
        quiet_access_log()
    return problem(exc.status, exc.code, exc.message, **exc.extra)


bp.register_error_handler(RefusedError, refused)

# --- request bodies ------------------------------------------------------------------------------------------


class LineIn(Body):
    """One line: a variant, how many, and the unit price the buyer saw (checked against the current one)."""

    variant_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price_minor: int = Field(ge=0, le=MAX_AMOUNT, description="Integer minor units of `currency`.")


class BuyerIn(Body):
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description=(
            "The platform's buyer id (required live). The per-buyer limit counts it normalized: Unicode NFKC, "
            "case-folded, zero-width and other format characters removed, surrounding spaces stripped."
        ),
    )
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=255)

    _clean = field_validator("ref", "email", "name")(plain_text)


class AddressIn(Body):
    name: str | None = Field(default=None, max_length=255)
    line1: str | None = Field(default=None, max_length=255)
    line2: str | None = Field(default=None, max_length=255)
    city: str | None = Field(default=None, max_length=255)
    province_code: str | None = Field(default=None, max_length=16)
    postal_code: str | None = Field(default=None, max_length=32)
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    phone: str | None = Field(default=None, max_length=64)

    _clean = field_validator("name", "line1", "line2", "city", "province_code", "postal_code", "phone")(
        plain_text
    )


class AttributionIn(Body):
    """What credits a creator with the sale: the click ids the platform holds for the buyer (the most recent
    one inside its program's attribution window wins) and/or a link code. Unknown or expired ones are
    ignored; the order goes through either way. A live session's creator needs neither."""

    click_ids: list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]] = Field(
        default_factory=list, max_length=MAX_CLICKS
    )
    link_code: str | None = Field(default=None, min_length=1, max_length=24, pattern=r"^[A-Za-z0-9_-]+$")


class OrderCreate(Body):
    """An order placed on the platform. With `live_session_id`, every line must be a variant pinned in that
    session, priced at the pin's flash price, and `buyer.ref` is required."""

    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    buyer: BuyerIn = Field(default_factory=BuyerIn)
    shipping_address: AddressIn | None = None
    platform_order_id: str | None = Field(default=None, min_length=1, max_length=255)
    live_session_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    attribution: AttributionIn | None = None

    _clean = field_validator("platform_order_id")(plain_text)

    @model_validator(mode="after")
    def _distinct_variants(self) -> OrderCreate:
        ids = [line.variant_id for line in self.lines]
        if len(ids) != len(set(ids)):
            raise ValueError("each variant may appear on one line only")
        return self


class RefundLineIn(Body):
    variant_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class RefundCreate(Body):
    """A refund made on the platform: units of lines, or an amount, or (neither) the whole order."""

    refund_id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="The platform's id of the refund.",
    )
    lines: list[RefundLineIn] = Field(default_factory=list, max_length=MAX_LINES)
    amount_minor: int | None = Field(
        default=None, ge=1, le=MAX_AMOUNT, description="Refunded without units: shared by the lines."
    )

    @model_validator(mode="after")
    def _units_or_amount(self) -> RefundCreate:
        if self.lines and self.amount_minor is not None:
            raise ValueError("give lines or amount_minor, not both")
        if len({line.variant_id for line in self.lines}) != len(self.lines):
            raise ValueError("each variant may appear on one line only")
        return self


class OrderCancel(Body):
    reason: str | None = Field(default=None, min_length=1, max_length=500)

    _clean = field_validator("reason")(plain_text)


class IdempotencyHeaders(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    idempotency_key: str = Field(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Unique per order attempt; a repeat with the same body gets the first answer again.",
    )


# --- representations ------------------------------------------------------------------------------------------


class OrderLineOut(BaseModel):
    variant_id: int
    quantity: int
    unit_price_minor: int
    live_pin_id: int | None


class AttributionOut(BaseModel):
    creator_ref: str = Field(description="The creator credited with the sale.")
    via: str = Field(description="click, code or live.")


class OrderOut(BaseModel):
    """An order as Storelink holds it."""

    id: str = Field(description="Storelink's order id.")
    status: str = Field(description="accepted, confirmed, rejected, cancelled, fulfilled or refunded.")
    merchant_id: int
    platform_order_id: str | None
    live_session_id: int | None
    currency: str
    lines: list[OrderLineOut]
    subtotal_minor: int
    total_minor: int
    buyer: dict[str, Any]
    shipping_address: dict[str, Any]
    attribution: AttributionOut | None = Field(default=None, description="The creator credited, if any.")
    store_order_id: str | None = Field(description="The store's id once the store confirmed the order.")
    store_order_name: str | None
    reason: str | None = Field(description="Why the order was rejected or cancelled.")
    hold_expires_at: datetime | None = Field(description="When the stock held for the order is let go.")
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    data: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class OrdersQuery(PageQuery):
    """The client's orders, newest first; the filters combine."""

    status: Literal["accepted", "confirmed", "rejected", "cancelled", "fulfilled", "refunded"] | None = None
    merchant_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    live_session_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    created_from: datetime | None = Field(default=None, description="Created at or after (ISO 8601).")
    created_to: datetime | None = Field(default=None, description="Created before (ISO 8601).")

    @field_validator("created_from", "created_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), sort_keys=True), status=status, mimetype="application/json"
    )


# --- routes -----------------------------------------------------------------------------------------------------


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None or key == "":
        raise ApiError(
            400,
            "idempotency_key_required",
            "an Idempotency-Key header is required to create an order",
            title="Idempotency key required",
        )
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(
            400,
            "idempotency_key_invalid",
            "the Idempotency-Key must be 1 to 255 visible ASCII characters",
            title="Invalid idempotency key",
        )
    return key


def _order_id(order_id: str) -> str:
    """An order id from the path; one that no order can have is a 404 before any query."""
    if not _ORDER_ID.fullmatch(order_id):
        raise NotFoundError(f"order {order_id!r} not found", code="order_not_found")
    return order_id


@bp.post("/orders")
@doc(
    summary="Create an order",
    tags=[TAG],
    body=OrderCreate,
    headers=IdempotencyHeaders,
    responses={201: OrderOut, 400: None, 404: None, 409: None, 415: None, 422: None, 503: None},
    codes={
        400: ("idempotency_key_required", "idempotency_key_invalid", "malformed_json"),
        404: ("live_session_not_found",),
        409: (
            "price_changed",
            "insufficient_stock",
            "sold_out",
            "buyer_limit_exceeded",
            "variant_not_sellable",
            "pin_not_on_sale",
        ),
        422: (
            "invalid_request",
            "idempotency_key_reused",
            "variant_not_found",
            "variant_not_pinned",
            "currency_mismatch",
            "mixed_merchants",
            "buyer_required",
            STORE_TAKES_NO_ORDERS,
        ),
        503: ("stock_busy", SERVICE_UNAVAILABLE),
    },
)
def create_order() -> Response:
    """Validate the lines, hold the stock and accept the order; the store push follows asynchronously
    (`order.confirmed` or `order.rejected`)."""
    client, check = authenticate_deferred()
    key = _idempotency_key()
    body = parse_body(OrderCreate)
    if body.live_session_id is None and check is not None:
        client, check = authenticate(), None  # only a live purchase's Lua call confirms the key
    order_request, digest = order_request_of(api_runtime(), body)
    try:
        answer = checkout.create_order(api_runtime(), client.id, key, order_request, digest, check)
    except counters.KeyChangedError:  # keys changed since the lookup was cached: look it up again
        client = authenticate()
        answer = checkout.create_order(api_runtime(), client.id, key, order_request, digest)
    return answer_response(answer, url_for(".get_order", order_id=answer.body["id"]))


def order_request_of(rt: Runtime, body: OrderCreate) -> tuple[accept.OrderRequest, str]:
    """The checkout's request of a validated body, and the body's digest (an idempotency key's replay must
    carry the same)."""
    dumped = body.model_dump(mode="json")
    if dumped["attribution"] is None:
        del dumped["attribution"]  # the digest of an order without attribution is what it always was
    digest = accept.request_hash(dumped)
    claim = attribution.Claim(
        click_ids=tuple(body.attribution.click_ids) if body.attribution else (),
        link_code=body.attribution.link_code if body.attribution else None,
    )
    order_request = accept.OrderRequest(
        lines=tuple(
            accept.LineRequest(line.variant_id, line.quantity, line.unit_price_minor) for line in body.lines
        ),
        currency=body.currency,
        buyer=body.buyer.model_dump(exclude_none=True),
        shipping_address=body.shipping_address.model_dump(exclude_none=True) if body.shipping_address else {},
        platform_order_id=body.platform_order_id,
        live_session_id=body.live_session_id,
        attribution=attribution.resolve(rt, claim, [line.variant_id for line in body.lines]),
    )
    return order_request, digest


def answer_response(answer: accept.Answer, location: str) -> Response:
    """A checkout's answer: the order (201, or the first answer again), where it lives, and whether it is a
    replay."""
    response = _json(answer.body, answer.status)
    response.headers["Location"] = location
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/orders")
@doc(summary="List orders", tags=[TAG], query=OrdersQuery, responses={200: OrderPage, 422: None})
def list_orders() -> Response:
    """The client's orders, newest first, filtered by status, merchant, live session and creation time."""
    client = authenticate()
    query = parse_query(OrdersQuery)
    before = decode_id_cursor(CURSOR_KIND, query.cursor)
    data, last = queries.list_orders(
        api_runtime(),
        client.id,
        queries.OrderFilter(
            status=query.status,
            merchant_id=query.merchant_id,
            live_session_id=query.live_session_id,
            created_from=query.created_from,
            created_to=query.created_to,
        ),
        before=before,
        limit=query.limit,
    )
    return _json({"data": data, "next_cursor": encode_cursor(CURSOR_KIND, [last]) if last else None})


@bp.get("/orders/<string(maxlength=40):order_id>")
@doc(summary="Get an order", tags=[TAG], responses={200: OrderOut, 404: None})
def get_order(order_id: str) -> Response:
    """One order with its lines and status."""
    client = authenticate()
    return _json(queries.get_order(api_runtime(), client.id, _order_id(order_id)))


@bp.post("/orders/<string(maxlength=40):order_id>/cancel")
@doc(
    summary="Cancel an order",
    tags=[TAG],
    body=OrderCancel,
    responses={200: OrderOut, 404: None, 409: None, 415: None, 422: None},
)
def cancel_order(order_id: str) -> Response:
    """Cancel an accepted or confirmed order: its held stock is let go at once, and an order the store has
    is cancelled there by a background job. Cancelling a cancelled order answers it unchanged."""
    client = authenticate()
    public_id = _order_id(order_id)
    body = parse_body(OrderCancel, optional=True)
    return _json(cancel.cancel_order(api_runtime(), client.id, public_id, body.reason))


@bp.post("/orders/<string(maxlength=40):order_id>/refunds")
@doc(
    summary="Record a refund",
    tags=[TAG],
    body=RefundCreate,
    responses={200: OrderOut, 201: OrderOut, 400: None, 404: None, 409: None, 415: None, 422: None},
    codes={
        404: ("order_not_found",),
        409: ("order_not_refundable",),
        422: ("invalid_request", "line_not_found", "refund_exceeds_line"),
    },
    operation_id="createOrderRefund",
)
def refund_order(order_id: str) -> Response:
    """Record a refund the platform made (publishes `order.refunded`; commission on it is reversed pro rata):
    201 when recorded now, 200 when this refund id was recorded before."""
    client = authenticate()
    public_id = _order_id(order_id)
    body = parse_body(RefundCreate)
    result, created = refunds.record_refund(
        api_runtime(),
        client.id,
        public_id,
        refund_id=body.refund_id,
        lines=[refunds.RefundLine(line.variant_id, line.quantity) for line in body.lines],
        amount_minor=body.amount_minor,
    )
    return _json(result, 201 if created else 200)


STATUSES = tuple(status.value for status in OrderStatus)
