"""Creator reads of the Platform API: a creator's affiliate links, their clicks, and the creator's earnings.

A creator is the platform's own user ref; Storelink keeps no creator record, so a creator with nothing yet is
an empty page or zero earnings, not a 404. Every query is scoped to the calling client's merchants
(`common.visible_merchants`): a link, click or entry of another client's merchant is never counted.
Earnings are sums of integer minor units per state and currency (`connector.affiliates.reports`).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.affiliates import reports
from connector.api.common import (
    PageQuery,
    Query,
    api_runtime,
    as_utc,
    authenticate,
    decode_id_cursor,
    encode_cursor,
    invalid,
    json_response,
    parse_query,
    require_client,
    visible_merchants,
)
from connector.api.openapi import MAX_ID, doc

logger = logging.getLogger(__name__)

bp = Blueprint("api_creators", __name__)
bp.before_request(require_client)

TAG = "creators"
CREATOR_PATH = "/creators/<string(maxlength=255):creator_ref>"

# --- representations -------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class ClickCounts(_Out):
    """Counted interactions with a link, by kind (deduplicated per visitor; bots not counted)."""

    click: int
    view: int
    tap: int


class CreatorLinkOut(_Out):
    """A creator's affiliate link to a product, with its counted clicks."""

    id: int
    code: str = Field(description="The link's public code.")
    url: str = Field(description="The link to share: `PUBLIC_URL/l/{code}`.")
    merchant_id: int
    program_id: int
    creator_ref: str
    product_id: int
    product_title: str
    variant_id: int | None
    locked_rate_bps: int = Field(description="The rate kept until `locked_until`, in basis points.")
    locked_until: datetime
    created_at: datetime
    clicks: ClickCounts


class CreatorLinkPage(_Out):
    data: list[CreatorLinkOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ClickOut(_Out):
    """A counted click, view or tap on one of the creator's links."""

    id: int
    click_id: str = Field(description="The id the redirect handed on; an order carrying it is attributed.")
    kind: str = Field(description="click, view or tap.")
    link_id: int
    link_code: str
    merchant_id: int
    product_id: int
    occurred_at: datetime


class ClickPage(_Out):
    data: list[ClickOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class StateTotalOut(_Out):
    """The sum of a creator's entries in one state and currency."""

    state: str = Field(description="pending, approved or paid.")
    currency: str
    amount_minor: int = Field(description="Signed integer minor units: reversals count negative.")
    entries: int


class CurrencyTotalOut(_Out):
    """A creator's entries in one currency."""

    currency: str
    pending_minor: int
    approved_minor: int
    paid_minor: int
    balance_minor: int = Field(
        description=(
            "Not yet paid: pending + approved. A reversal made after a payout is a negative entry of its own, "
            "so it is carried into this balance."
        )
    )
    total_minor: int = Field(description="Every entry, paid or not.")
    entries: int


class EarningsOut(_Out):
    """A creator's commission per state and currency, and per currency with the balance not yet paid."""

    creator_ref: str
    by_state: list[StateTotalOut]
    currencies: list[CurrencyTotalOut]


# --- query parameters ------------------------------------------------------------------------------------


class CreatorLinksQuery(PageQuery):
    """The creator's links, newest first."""


class ClicksQuery(PageQuery):
    """The clicks on the creator's links, newest first; the filters combine."""

    kind: Literal["click", "view", "tap"] | None = Field(default=None, description="Only this kind.")
    link_code: str | None = Field(
        default=None, min_length=1, max_length=24, description="Only the clicks of this link."
    )
    since: datetime | None = Field(
        default=None, description="At or after this instant (ISO 8601; UTC if no offset)."
    )
    until: datetime | None = Field(
        default=None, description="Before this instant (ISO 8601; UTC if no offset)."
    )

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)


class EarningsQuery(Query):
    merchant_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only this merchant's entries."
    )


# --- routes ----------------------------------------------------------------------------------------------


def creator(creator_ref: str) -> str:
    """A creator ref from the path; control characters are a 422 (no creator has them)."""
    if any(ch < " " or ch == "\x7f" for ch in creator_ref):
        raise invalid("creator_ref is not valid", [("creator_ref", "must not contain control characters")])
    return creator_ref


def period(since: datetime | None, until: datetime | None) -> None:
    """A 422 when `until` is not after `since`."""
    if since is not None and until is not None and until <= since:
        raise invalid("the period is empty", [("until", "must be later than since")])


@bp.get(CREATOR_PATH + "/affiliate-links")
@doc(
    summary="List a creator's affiliate links",
    tags=[TAG],
    query=CreatorLinksQuery,
    responses={200: CreatorLinkPage},
)
def list_creator_affiliate_links(creator_ref: str) -> Response:
    """The creator's links at the calling client's merchants, newest first, each with its click counts."""
    params = parse_query(CreatorLinksQuery)
    before = decode_id_cursor("creator-links", params.cursor)
    client = authenticate()
    ref = creator(creator_ref)
    with api_runtime().db.session() as session:
        links, more = reports.creator_links(
            session, ref, visible_merchants(session, client), before=before, limit=params.limit
        )
    base_url = (api_runtime().settings.public_url or request.host_url).rstrip("/")
    data = [
        CreatorLinkOut.model_validate(dataclasses.asdict(link) | {"url": f"{base_url}/l/{link.code}"})
        for link in links
    ]
    next_cursor = encode_cursor("creator-links", [data[-1].id]) if more else None
    return json_response(CreatorLinkPage(data=data, next_cursor=next_cursor))


@bp.get(CREATOR_PATH + "/clicks")
@doc(summary="List a creator's clicks", tags=[TAG], query=ClicksQuery, responses={200: ClickPage})
def list_creator_clicks(creator_ref: str) -> Response:
    """Counted clicks, views and taps on the creator's links, newest first."""
    params = parse_query(ClicksQuery)
    before = decode_id_cursor("creator-clicks", params.cursor)
    period(params.since, params.until)
    client = authenticate()
    ref = creator(creator_ref)
    filters = reports.ClickFilter(
        kind=params.kind, link_code=params.link_code, since=params.since, until=params.until
    )
    with api_runtime().db.session() as session:
        clicks, more = reports.creator_clicks(
            session, ref, visible_merchants(session, client), filters, before=before, limit=params.limit
        )
    data = [ClickOut.model_validate(click) for click in clicks]
    next_cursor = encode_cursor("creator-clicks", [data[-1].id]) if more else None
    return json_response(ClickPage(data=data, next_cursor=next_cursor))


@bp.get(CREATOR_PATH + "/earnings")
@doc(
    summary="Get a creator's earnings",
    tags=[TAG],
    query=EarningsQuery,
    responses={200: EarningsOut, 404: None},
    codes={404: ("merchant_not_found",)},
)
def get_creator_earnings(creator_ref: str) -> Response:
    """The creator's commission at the calling client's merchants, summed per state and currency."""
    params = parse_query(EarningsQuery)
    client = authenticate()
    ref = creator(creator_ref)
    with api_runtime().db.session() as session:
        scope = visible_merchants(session, client)
        if params.merchant_id is not None:
            reports.require_merchant(session, params.merchant_id, scope)
        earnings = reports.creator_earnings(session, ref, scope, merchant_id=params.merchant_id)
    logger.debug("earnings read", extra={"client_id": client.id, "currencies": len(earnings.currencies)})
    return json_response(EarningsOut.model_validate(earnings))
