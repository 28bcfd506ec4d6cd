"""HTTP routes of the /v1 affiliate resources: commission programs and creators' links.

A program belongs to a merchant of the calling client; another client's program is a 404. Listings and
reports of commissions and earnings live under `/v1/commissions` and `/v1/creators`. `POST /v1/payouts` records what the platform paid.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, request, url_for
from pydantic import BaseModel, Field, field_validator, model_validator

from connector.affiliates import links, payouts, programs
from connector.api.common import (
    Body,
    api_runtime,
    as_utc,
    authenticate,
    parse_body,
    plain_text,
    require_client,
)
from connector.api.openapi import MAX_ID, doc
from connector.api.orders import refused
from connector.domain.errors import RefusedError

logger = logging.getLogger(__name__)

bp = Blueprint("api_affiliates", __name__)
bp.before_request(require_client)
bp.register_error_handler(RefusedError, refused)

TAG = "affiliates"
MAX_RATES = 1000
MAX_SECONDS = 10**9
MAX_PAYOUT_ENTRIES = 10_000
_RATE = "Basis points: 100 (1%) to 8000 (80%); else a 422 `rate_out_of_range`."
_WINDOW = "Seconds, positive (else a 422 `window_not_positive`)."


class ProductRateIn(Body):
    product_id: int = Field(ge=1, le=MAX_ID)
    rate_bps: int = Field(ge=-MAX_SECONDS, le=MAX_SECONDS, description=_RATE)


class ProductRateChange(Body):
    product_id: int = Field(ge=1, le=MAX_ID)
    rate_bps: int | None = Field(ge=-MAX_SECONDS, le=MAX_SECONDS, description=_RATE + " Null removes it.")


class CollectionRateIn(Body):
    collection_id: int = Field(ge=1, le=MAX_ID, description="A collection of the program's merchant.")
    rate_bps: int = Field(ge=-MAX_SECONDS, le=MAX_SECONDS, description=_RATE)


class CollectionRateChange(Body):
    collection_id: int = Field(ge=1, le=MAX_ID, description="A collection of the program's merchant.")
    rate_bps: int | None = Field(ge=-MAX_SECONDS, le=MAX_SECONDS, description=_RATE + " Null removes it.")


def _distinct(rates: list[Any] | None) -> list[Any] | None:
    if rates is not None and len({rate.product_id for rate in rates}) != len(rates):
        raise ValueError("each product may appear once")
    return rates


def _distinct_collections(rates: list[Any] | None) -> list[Any] | None:
    if rates is not None and len({rate.collection_id for rate in rates}) != len(rates):
        raise ValueError("each collection may appear once")
    return rates


_COLLECTION_RATES = (
    "Rates on every product of a store collection (`GET /v1/collections`): below a product's own rate, above "
    "the default; a product in several earns the highest. An unknown collection is a 422 `collection_not_found`."
)


class _Windows(Body):
    attribution_window_seconds: int | None = Field(
        default=None, ge=-MAX_SECONDS, le=MAX_SECONDS, description=_WINDOW + " Default 7 days."
    )
    hold_seconds: int | None = Field(
        default=None,
        ge=-MAX_SECONDS,
        le=MAX_SECONDS,
        description=_WINDOW + " Commission is approved this long after the sale. Default 30 days.",
    )
    rate_lock_seconds: int | None = Field(
        default=None,
        ge=-MAX_SECONDS,
        le=MAX_SECONDS,
        description=_WINDOW + " A link keeps the rate it was made with this long. Default 30 days.",
    )


class ProgramCreate(_Windows):
    """An open program (a default rate, optional per-product and per-collection rates) or a targeted offer to
    one creator (rates for chosen products or collections, winning over the open program's for that
    creator). The rate of a product: the creator's targeted offer (product rate, else collection rate), else
    the open program's product rate, else its collection rate, else its default."""

    merchant_id: int = Field(ge=1, le=MAX_ID)
    kind: Literal["open", "targeted"]
    name: str = Field(min_length=1, max_length=200)
    creator_ref: str | None = Field(default=None, min_length=1, max_length=255)
    default_rate_bps: int | None = Field(default=None, ge=-MAX_SECONDS, le=MAX_SECONDS, description=_RATE)
    product_rates: list[ProductRateIn] | None = Field(default=None, max_length=MAX_RATES)
    collection_rates: list[CollectionRateIn] | None = Field(
        default=None, max_length=MAX_RATES, description=_COLLECTION_RATES
    )

    _clean = field_validator("name", "creator_ref")(plain_text)
    _once = field_validator("product_rates")(_distinct)
    _once_each = field_validator("collection_rates")(_distinct_collections)


class ProgramUpdate(_Windows):
    """Fields to change; `product_rates` and `collection_rates` are merged into the program's, `status: ended`
    ends it for good."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    default_rate_bps: int | None = Field(default=None, ge=-MAX_SECONDS, le=MAX_SECONDS, description=_RATE)
    product_rates: list[ProductRateChange] | None = Field(default=None, max_length=MAX_RATES)
    collection_rates: list[CollectionRateChange] | None = Field(
        default=None, max_length=MAX_RATES, description=_COLLECTION_RATES
    )
    status: Literal["ended"] | None = None

    _clean = field_validator("name")(plain_text)
    _once = field_validator("product_rates")(_distinct)
    _once_each = field_validator("collection_rates")(_distinct_collections)


class LinkCreate(Body):
    """A creator's link to a product (or one of its variants)."""

    creator_ref: str = Field(min_length=1, max_length=255, description="The creator's platform user ref.")
    product_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    variant_id: int | None = Field(default=None, ge=1, le=MAX_ID)

    _clean = field_validator("creator_ref")(plain_text)

    @model_validator(mode="after")
    def _one_target(self) -> LinkCreate:
        if self.product_id is None and self.variant_id is None:
            raise ValueError("product_id or variant_id is required")
        return self


EntryId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[\x21-\x7e]+$")]
"""A commission entry's public id (visible ASCII)."""


class PayoutCreate(Body):
    """A payout the platform made to a creator: the approved entries it paid, or every approved entry of the
    creator in the currency approved up to a time."""

    platform_payout_id: str = Field(
        min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$", description="The platform's payout id."
    )
    creator_ref: str = Field(min_length=1, max_length=255)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    entry_ids: list[EntryId] | None = Field(default=None, min_length=1, max_length=MAX_PAYOUT_ENTRIES)
    approved_up_to: Annotated[datetime | None, Field(strict=False)] = Field(
        default=None, description="ISO 8601; UTC when it has no offset."
    )

    _clean = field_validator("creator_ref")(plain_text)

    @field_validator("approved_up_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)

    @model_validator(mode="after")
    def _one_selection(self) -> PayoutCreate:
        if (self.entry_ids is None) == (self.approved_up_to is None):
            raise ValueError("give entry_ids or approved_up_to (one of them)")
        return self


# --- representations ------------------------------------------------------------------------------------------


class ProductRateOut(BaseModel):
    product_id: int
    rate_bps: int


class CollectionRateOut(BaseModel):
    collection_id: int
    handle: str
    title: str
    rate_bps: int


class ProgramOut(BaseModel):
    id: int
    merchant_id: int
    kind: str = Field(description="open or targeted.")
    name: str
    creator_ref: str | None
    default_rate_bps: int | None
    product_rates: list[ProductRateOut]
    collection_rates: list[CollectionRateOut]
    attribution_window_seconds: int
    hold_seconds: int
    rate_lock_seconds: int
    status: str = Field(description="active or ended.")
    created_at: str
    updated_at: str
    ended_at: str | None


class LinkOut(BaseModel):
    id: int
    code: str = Field(description="Short, unguessable, URL-safe.")
    url: str = Field(description="The public link: `GET` it to be counted and sent to the product.")
    creator_ref: str
    merchant_id: int
    product_id: int
    variant_id: int | None
    program_id: int
    rate_bps: int | None = Field(description="The rate the link earns now (null: no program pays it).")
    locked_rate_bps: int = Field(description="The rate in force when the link was made.")
    locked_until: str = Field(description="Until then a cut does not apply to the link.")
    created_at: str


class PayoutOut(BaseModel):
    id: int
    platform_payout_id: str
    creator_ref: str
    currency: str
    total_minor: int = Field(description="The sum of the entries paid (a reversal counts negative).")
    entry_count: int
    entry_ids: list[str]
    created_at: str


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


_PROGRAM_CODES = (
    "invalid_request",
    "merchant_not_found",
    "product_not_found",
    "collection_not_found",
    "rate_out_of_range",
)


@bp.post("/affiliate-programs")
@doc(
    summary="Create a commission program",
    tags=[TAG],
    body=ProgramCreate,
    responses={201: ProgramOut, 400: None, 409: None, 415: None, 422: None},
    codes={409: ("program_exists",), 422: (*_PROGRAM_CODES, "window_not_positive", "invalid_program")},
    operation_id="createAffiliateProgram",
)
def create_program() -> Response:
    """Start an open program or a targeted offer for one of the client's merchants."""
    client = authenticate()
    body = parse_body(ProgramCreate)
    spec = programs.ProgramSpec(
        merchant_id=body.merchant_id,
        kind=body.kind,
        name=body.name,
        creator_ref=body.creator_ref,
        default_rate_bps=body.default_rate_bps,
        product_rates={rate.product_id: rate.rate_bps for rate in body.product_rates or []},
        collection_rates={rate.collection_id: rate.rate_bps for rate in body.collection_rates or []},
        attribution_window_seconds=body.attribution_window_seconds,
        hold_seconds=body.hold_seconds,
        rate_lock_seconds=body.rate_lock_seconds,
    )
    result = programs.create_program(api_runtime(), client.id, spec)
    response = _json(result, 201)
    response.headers["Location"] = url_for(".get_program", program_id=result["id"])
    return response


@bp.get("/affiliate-programs/<id:program_id>")
@doc(
    summary="Get a commission program",
    tags=[TAG],
    responses={200: ProgramOut, 404: None},
    codes={404: ("program_not_found",)},
    operation_id="getAffiliateProgram",
)
def get_program(program_id: int) -> Response:
    """The program with its rates and settings."""
    client = authenticate()
    return _json(programs.get_program(api_runtime(), client.id, program_id))


@bp.patch("/affiliate-programs/<id:program_id>")
@doc(
    summary="Change or end a commission program",
    tags=[TAG],
    body=ProgramUpdate,
    responses={200: ProgramOut, 400: None, 404: None, 409: None, 415: None, 422: None},
    codes={
        404: ("program_not_found",),
        409: ("program_ended",),
        422: (*_PROGRAM_CODES, "window_not_positive", "invalid_program"),
    },
    operation_id="updateAffiliateProgram",
)
def update_program(program_id: int) -> Response:
    """Change rates or settings, or end the program. A raise applies to existing links at once; a cut when
    their rate lock ends."""
    client = authenticate()
    body = parse_body(ProgramUpdate)
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if body.product_rates is not None:
        changes["product_rates"] = {rate.product_id: rate.rate_bps for rate in body.product_rates}
    if body.collection_rates is not None:
        changes["collection_rates"] = {rate.collection_id: rate.rate_bps for rate in body.collection_rates}
    return _json(programs.update_program(api_runtime(), client.id, program_id, changes))


@bp.post("/affiliate-links")
@doc(
    summary="Make a creator's link",
    tags=[TAG],
    body=LinkCreate,
    responses={200: LinkOut, 201: LinkOut, 400: None, 415: None, 422: None},
    codes={422: ("invalid_request", "product_not_found", "not_in_program")},
    operation_id="createAffiliateLink",
)
def create_link() -> Response:
    """The creator's link to the product: 201 when made now, 200 with the same link when it was made before
    (one link per creator and product)."""
    client = authenticate()
    body = parse_body(LinkCreate)
    rt = api_runtime()
    result, created = links.create_link(
        rt,
        client.id,
        creator_ref=body.creator_ref,
        product_id=body.product_id,
        variant_id=body.variant_id,
        base_url=rt.settings.public_url or request.host_url,
    )
    return _json(result, 201 if created else 200)


@bp.post("/payouts")
@doc(
    summary="Record a payout",
    tags=[TAG],
    body=PayoutCreate,
    responses={200: PayoutOut, 201: PayoutOut, 400: None, 409: None, 415: None, 422: None},
    codes={
        409: ("entry_not_approved", "payout_id_reused"),
        422: (
            "invalid_request",
            "entry_not_found",
            "creator_mismatch",
            "currency_mismatch",
            "nothing_to_pay",
        ),
    },
    operation_id="createPayout",
)
def create_payout() -> Response:
    """Mark the paid entries `paid` in one transaction and answer the total: 201 when recorded now, 200 with
    the first answer for a payout id recorded before. Entries that are not approved are refused, and
    nothing is marked."""
    client = authenticate()
    body = parse_body(PayoutCreate)
    result, created = payouts.record_payout(
        api_runtime(),
        client.id,
        payouts.PayoutRequest(
            platform_payout_id=body.platform_payout_id,
            creator_ref=body.creator_ref,
            currency=body.currency,
            entry_ids=body.entry_ids,
            approved_up_to=body.approved_up_to,
        ),
    )
    return _json(result, 201 if created else 200)
