"""Commission reads of the Platform API: the ledger's entries by merchant, creator, state and period, one entry
with its history, and the same entries as a streamed CSV file.

Every query is scoped to the calling client's merchants: another client's entry is a 404. Filters are checked
before anything is read or streamed: a merchant the client cannot see is a 404 `merchant_not_found`, a bad
state, kind, date or an empty period a 422 `invalid_request` naming the parameter. Amounts are signed integer
minor units of the entry's currency (a reversal is negative); the CSV adds major units as decimal strings
(`connector.affiliates.export` documents its columns).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Literal

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.affiliates import export, reports
from connector.api.common import (
    PageQuery,
    Query,
    api_runtime,
    as_utc,
    authenticate,
    decode_id_cursor,
    encode_cursor,
    json_response,
    parse_query,
    require_client,
    visible_merchants,
)
from connector.api.creators import period
from connector.api.openapi import MAX_ID, doc
from connector.domain.errors import NotFoundError

logger = logging.getLogger(__name__)

bp = Blueprint("api_commissions", __name__)
bp.before_request(require_client)

TAG = "commissions"
CURSOR_KIND = "commissions"
_PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

# --- representations -------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class CommissionOut(_Out):
    """One entry of the commission ledger. Entries are never edited but for their state: a refund or a
    cancellation adds a `reversal` entry of its own, negative."""

    id: str = Field(description="The entry's id.")
    merchant_id: int
    creator_ref: str
    program_id: int
    link_id: int | None
    link_code: str | None = Field(
        description="The link that earned it; null for a sale made without a link (a live session)."
    )
    attribution_ref: str = Field(
        description="What earned it: `link:<id>`, `live:<session id>` or `program:<id>`."
    )
    order_id: str = Field(description="Storelink's order id.")
    platform_order_id: str | None
    order_line_id: int
    kind: str = Field(description="accrual or reversal.")
    cause: str = Field(description="order, cancel or refund:<store refund id>.")
    reverses: str | None = Field(description="The id of the entry a reversal gives back.")
    base_minor: int = Field(
        description="The net amount earned on (after discounts, before tax and shipping)."
    )
    refunded_quantity: int | None
    rate_bps: int
    amount_minor: int = Field(description="The commission: signed integer minor units of `currency`.")
    currency: str
    state: str = Field(description="pending, approved or paid.")
    hold_until: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    payout_id: str | None = Field(description="The platform's payout id once paid.")
    created_at: datetime


class CreatorTotalOut(_Out):
    """One creator's entries in one currency, across every page of the listing's filters."""

    creator_ref: str
    currency: str
    pending_minor: int
    approved_minor: int
    paid_minor: int
    balance_minor: int = Field(description="Not yet paid: pending + approved.")
    total_minor: int
    entries: int


class CommissionPage(_Out):
    data: list[CommissionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    totals: list[CreatorTotalOut] = Field(
        description="Sums per creator and currency of every entry matching the filters (not only this page)."
    )


class TransitionOut(_Out):
    from_state: str | None = Field(description="null when the entry was created.")
    to_state: str
    at: datetime
    payout_id: str | None


class OrderRefOut(_Out):
    id: str
    platform_order_id: str | None
    store_order_name: str | None
    status: str
    currency: str


class LineRefOut(_Out):
    id: int
    variant_id: int
    quantity: int
    refunded_quantity: int
    unit_price_minor: int
    discount_minor: int


class LinkRefOut(_Out):
    id: int
    code: str
    product_id: int
    variant_id: int | None


class ProgramRefOut(_Out):
    id: int
    name: str
    kind: str = Field(description="open or targeted.")


class CommissionDetailOut(_Out):
    """An entry with its order, line, link and program, the entries reversing it, and its state history."""

    entry: CommissionOut
    order: OrderRefOut
    line: LineRefOut
    link: LinkRefOut | None
    program: ProgramRefOut
    reversed_by: list[str] = Field(description="Ids of the reversal entries that give this one back.")
    history: list[TransitionOut] = Field(description="State changes in the order they were made.")


# --- query parameters ------------------------------------------------------------------------------------


class CommissionFilterQuery(Query):
    """Entries of the calling client's merchants; the filters combine."""

    merchant_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Only this merchant's entries."
    )
    creator_ref: str | None = Field(
        default=None, min_length=1, max_length=255, description="Only this creator's."
    )
    state: Literal["pending", "approved", "paid"] | None = Field(default=None, description="Only this state.")
    kind: Literal["accrual", "reversal"] | None = Field(default=None, description="Only this kind.")
    since: datetime | None = Field(
        default=None, description="Created at or after (ISO 8601; UTC if no offset)."
    )
    until: datetime | None = Field(default=None, description="Created before (ISO 8601; UTC if no offset).")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)

    def filters(self) -> reports.CommissionFilter:
        period(self.since, self.until)
        return reports.CommissionFilter(
            merchant_id=self.merchant_id,
            creator_ref=self.creator_ref,
            state=self.state,
            kind=self.kind,
            since=self.since,
            until=self.until,
        )


class CommissionsQuery(CommissionFilterQuery, PageQuery):
    """A page of entries, newest first, with totals per creator over every page."""


class ExportQuery(CommissionFilterQuery):
    """Every entry matching the filters, oldest first."""


# --- routes ----------------------------------------------------------------------------------------------

EXPORT_DESCRIPTION = (
    "Every entry matching the filters as CSV (`text/csv`), one row per entry in creation order, streamed. "
    "Columns, in this stable order (new ones are only added at the end): "
    + ", ".join(f"`{name}`" for name in export.COLUMNS)
    + ". Amounts are integer minor units (`*_minor`) and major units as decimal strings (`base`, `amount`); "
    "times are ISO 8601 in UTC."
)
_FILTER_CODES = {404: ("merchant_not_found",), 422: ("invalid_request",)}


@bp.get("/commissions")
@doc(
    summary="List commissions",
    tags=[TAG],
    query=CommissionsQuery,
    responses={200: CommissionPage, 404: None},
    codes=_FILTER_CODES,
)
def list_commissions() -> Response:
    """Ledger entries of the calling client's merchants, newest first, by merchant, creator, state, kind and
    creation period, with totals per creator and currency."""
    params = parse_query(CommissionsQuery)
    before = decode_id_cursor(CURSOR_KIND, params.cursor)
    filters = params.filters()
    client = authenticate()
    with api_runtime().db.session() as session:
        scope = visible_merchants(session, client)
        if filters.merchant_id is not None:
            reports.require_merchant(session, filters.merchant_id, scope)
        rows, last = reports.commissions(session, filters, scope, before=before, limit=params.limit)
        totals = reports.commission_totals(session, filters, scope)
    page = CommissionPage(
        data=[CommissionOut.model_validate(row) for row in rows],
        next_cursor=encode_cursor(CURSOR_KIND, [last]) if last is not None else None,
        totals=[CreatorTotalOut.model_validate(total) for total in totals],
    )
    logger.debug("commissions listed", extra={"client_id": client.id, "count": len(rows)})
    return json_response(page)


@bp.get("/commissions/export.csv")
@doc(
    summary="Export commissions as CSV",
    tags=[TAG],
    query=ExportQuery,
    responses={200: None, 404: None},
    media_types={200: export.MEDIA_TYPE},
    codes=_FILTER_CODES,
    description=EXPORT_DESCRIPTION,
)
def export_commissions() -> Response:
    params = parse_query(ExportQuery)
    filters = params.filters()
    client = authenticate()
    db = api_runtime().db
    with db.session() as session:
        scope = visible_merchants(session, client)
        if filters.merchant_id is not None:
            reports.require_merchant(session, filters.merchant_id, scope)
    logger.info(
        "commissions export started", extra={"client_id": client.id, "merchant_id": filters.merchant_id}
    )
    response = Response(export.iter_csv(db, filters, scope), mimetype=export.MEDIA_TYPE)
    response.headers["Content-Disposition"] = 'attachment; filename="commissions.csv"'
    return response


@bp.get("/commissions/<string(maxlength=40):public_id>")
@doc(
    summary="Get a commission",
    tags=[TAG],
    responses={200: CommissionDetailOut, 404: None},
    codes={404: ("commission_not_found",)},
)
def get_commission(public_id: str) -> Response:
    """One ledger entry with its order, line, link and program refs and its state history."""
    client = authenticate()
    if not _PUBLIC_ID.fullmatch(public_id):
        raise NotFoundError(f"commission {public_id!r} not found", code="commission_not_found")
    with api_runtime().db.session() as session:
        detail = reports.commission_detail(session, public_id, visible_merchants(session, client))
    return json_response(CommissionDetailOut.model_validate(detail))
