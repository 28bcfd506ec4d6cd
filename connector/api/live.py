"""HTTP routes of the /v1 live-sessions resource: sessions, start/end and product pins.

Purchases during a session go through `POST /v1/orders` with `live_session_id` (connector.api.orders).
Every session is reached through its merchant, so another client's session is a 404.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from flask import Blueprint, Response, url_for
from pydantic import BaseModel, Field, field_validator

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
from connector.live import sessions

logger = logging.getLogger(__name__)

bp = Blueprint("api_live", __name__)
bp.before_request(require_client)
bp.register_error_handler(RefusedError, refused)

TAG = "live"
MAX_ALLOCATION = 1_000_000
MAX_COUNTDOWN_SECONDS = 7 * 24 * 3600

# --- request bodies ------------------------------------------------------------------------------------------


class LiveSessionCreate(Body):
    """A live stream of one merchant's products, optionally hosted by a creator."""

    merchant_id: int = Field(ge=1, le=MAX_ID)
    title: str = Field(min_length=1, max_length=255)
    creator_ref: str | None = Field(default=None, min_length=1, max_length=255)
    affiliate_program_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="The commission program the creator's sales in this session earn under (the merchant's, "
        "open or offered to the creator); without it, whatever program pays the creator.",
    )
    scheduled_start: Annotated[datetime | None, Field(strict=False)] = Field(
        default=None, description="ISO 8601; UTC when it has no offset."
    )

    _clean = field_validator("title", "creator_ref")(plain_text)

    @field_validator("scheduled_start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)


class PinCreate(Body):
    """Pin a variant with a flash price and a stock allocation taken out of sellable stock now."""

    variant_id: int = Field(ge=1, le=MAX_ID)
    flash_price_minor: int = Field(
        ge=0, le=10**15, description="Integer minor units of the variant's currency."
    )
    allocation: int = Field(ge=1, le=MAX_ALLOCATION, description="Units reserved for the pin.")
    per_buyer_limit: int | None = Field(default=None, ge=1, le=MAX_ALLOCATION)
    countdown_seconds: int | None = Field(
        default=None, ge=1, le=MAX_COUNTDOWN_SECONDS, description="The pin ends this many seconds from now."
    )
    low_stock_threshold: int | None = Field(
        default=None, ge=0, le=MAX_ALLOCATION, description="`live.stock_low` when this few are left."
    )


# --- representations ------------------------------------------------------------------------------------------


class PinOut(BaseModel):
    """A pinned product with its live remaining allocation."""

    id: int
    live_session_id: int
    variant_id: int
    flash_price_minor: int
    currency: str
    allocation: int
    remaining: int | None = Field(description="Units still for sale (0 once the pin ended).")
    per_buyer_limit: int | None
    low_stock_threshold: int | None
    countdown_ends_at: datetime | None
    status: str = Field(description="active or ended.")
    created_at: datetime | None
    ended_at: datetime | None


class PinList(BaseModel):
    data: list[PinOut]


class LiveSessionOut(BaseModel):
    id: int
    merchant_id: int
    creator_ref: str | None
    affiliate_program_id: int | None
    title: str
    status: str = Field(description="scheduled, live or ended.")
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime | None
    pins: list[PinOut]


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), sort_keys=True), status=status, mimetype="application/json"
    )


# --- routes -----------------------------------------------------------------------------------------------------


@bp.post("/live-sessions")
@doc(
    summary="Create a live session",
    tags=[TAG],
    body=LiveSessionCreate,
    responses={201: LiveSessionOut, 400: None, 415: None, 422: None},
    operation_id="createLiveSession",
)
def create_session() -> Response:
    """A scheduled live session of one of the client's merchants."""
    client = authenticate()
    body = parse_body(LiveSessionCreate)
    result = sessions.create_session(
        api_runtime(),
        client.id,
        merchant_id=body.merchant_id,
        title=body.title,
        creator_ref=body.creator_ref,
        scheduled_start=body.scheduled_start,
        affiliate_program_id=body.affiliate_program_id,
    )
    response = _json(result, 201)
    response.headers["Location"] = url_for(".get_session", session_id=result["id"])
    return response


@bp.get("/live-sessions/<id:session_id>")
@doc(
    summary="Get a live session",
    tags=[TAG],
    responses={200: LiveSessionOut, 404: None},
    operation_id="getLiveSession",
)
def get_session(session_id: int) -> Response:
    """The session with its pins and their live remaining allocation."""
    client = authenticate()
    return _json(sessions.get_session(api_runtime(), client.id, session_id))


@bp.post("/live-sessions/<id:session_id>/start")
@doc(
    summary="Start a live session",
    tags=[TAG],
    responses={200: LiveSessionOut, 404: None, 409: None},
    operation_id="startLiveSession",
)
def start_session(session_id: int) -> Response:
    """Go live: the session's pins go on sale."""
    client = authenticate()
    return _json(sessions.start_session(api_runtime(), client.id, session_id))


@bp.post("/live-sessions/<id:session_id>/end")
@doc(
    summary="End a live session",
    tags=[TAG],
    responses={200: LiveSessionOut, 404: None},
    operation_id="endLiveSession",
)
def end_session(session_id: int) -> Response:
    """End the session and its pins; unsold allocations go back to sellable stock."""
    client = authenticate()
    return _json(sessions.end_session(api_runtime(), client.id, session_id))


@bp.post("/live-sessions/<id:session_id>/pins")
@doc(
    summary="Pin a product",
    tags=[TAG],
    body=PinCreate,
    responses={201: PinOut, 400: None, 404: None, 409: None, 415: None, 422: None, 503: None},
)
def create_pin(session_id: int) -> Response:
    """Pin a variant of the session's merchant; 409 when its sellable stock cannot cover the allocation."""
    client = authenticate()
    body = parse_body(PinCreate)
    countdown = (
        datetime.now(UTC) + timedelta(seconds=body.countdown_seconds) if body.countdown_seconds else None
    )
    result = sessions.create_pin(
        api_runtime(),
        client.id,
        session_id,
        variant_id=body.variant_id,
        flash_price_minor=body.flash_price_minor,
        allocation=body.allocation,
        per_buyer_limit=body.per_buyer_limit,
        countdown_ends_at=countdown,
        low_stock_threshold=body.low_stock_threshold,
    )
    response = _json(result, 201)
    response.headers["Location"] = url_for(".get_pin", session_id=session_id, pin_id=result["id"])
    return response


@bp.get("/live-sessions/<id:session_id>/pins")
@doc(summary="List a session's pins", tags=[TAG], responses={200: PinList, 404: None})
def list_pins(session_id: int) -> Response:
    """The session's pins with their live remaining allocation."""
    client = authenticate()
    return _json({"data": sessions.get_session(api_runtime(), client.id, session_id)["pins"]})


@bp.get("/live-sessions/<id:session_id>/pins/<id:pin_id>")
@doc(summary="Get a pin", tags=[TAG], responses={200: PinOut, 404: None})
def get_pin(session_id: int, pin_id: int) -> Response:
    """One pin with its live remaining allocation."""
    client = authenticate()
    return _json(sessions.get_pin(api_runtime(), client.id, session_id, pin_id))


@bp.delete("/live-sessions/<id:session_id>/pins/<id:pin_id>")
@doc(summary="Unpin a product", tags=[TAG], responses={200: PinOut, 404: None})
def delete_pin(session_id: int, pin_id: int) -> Response:
    """End the pin: it goes off sale and its unsold allocation goes back to sellable stock."""
    client = authenticate()
    return _json(sessions.end_pin(api_runtime(), client.id, session_id, pin_id))


@bp.post("/live-sessions/<id:session_id>/pins/<id:pin_id>/end")
@doc(summary="End a pin", tags=[TAG], responses={200: PinOut, 404: None})
def end_pin(session_id: int, pin_id: int) -> Response:
    """The same as unpinning: the pin goes off sale and its unsold allocation goes back to sellable stock."""
    client = authenticate()
    return _json(sessions.end_pin(api_runtime(), client.id, session_id, pin_id))
