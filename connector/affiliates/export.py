"""The commission ledger as CSV: one row per entry, streamed a chunk at a time, never the whole file in memory.

Columns, in this order (stable: new columns are only ever added at the end):

    entry_id          the entry's public id
    created_at        when the entry was made (ISO 8601, UTC, `Z`)
    merchant_id
    creator_ref       the platform's creator
    program_id
    link_code         the link that earned it (empty for a sale in a creator's live session)
    order_id          Storelink's order id
    platform_order_id
    order_line_id
    kind              accrual | reversal
    cause             order | cancel | refund:<store refund id>
    reverses_entry_id the accrual a reversal gives back (empty for an accrual)
    state             pending | approved | paid
    currency          ISO 4217
    rate_bps          the rate in basis points
    base_minor        the net amount earned on, integer minor units (negative: given back)
    base              the same in major units, a decimal string with the currency's digits ("12.50", JPY "1250")
    amount_minor      the commission, signed integer minor units
    amount            the same in major units, a decimal string
    hold_until        when a pending entry may be approved
    approved_at
    paid_at
    payout_id         the platform's payout id once paid

Rows are in creation order (then by id). A text cell that a spreadsheet would read as a formula (starting with
`=`, `+`, `-`, `@`, a tab or a carriage return) is written with a leading `'`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from connector.affiliates.reports import (
    CommissionFilter,
    CommissionRow,
    Scope,
    commission_query,
    commission_row,
)
from connector.domain.money import Money
from connector.infra.db import Database
from connector.infra.models import CommissionEntry

logger = logging.getLogger(__name__)

COLUMNS = (
    "entry_id",
    "created_at",
    "merchant_id",
    "creator_ref",
    "program_id",
    "link_code",
    "order_id",
    "platform_order_id",
    "order_line_id",
    "kind",
    "cause",
    "reverses_entry_id",
    "state",
    "currency",
    "rate_bps",
    "base_minor",
    "base",
    "amount_minor",
    "amount",
    "hold_until",
    "approved_at",
    "paid_at",
    "payout_id",
)
MEDIA_TYPE = "text/csv"
BATCH = 500
"""Entries fetched from the database, and rows written, per chunk."""
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def utc_text(value: datetime | None) -> str:
    """`value` as ISO 8601 in UTC with a `Z` (empty for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def major_units(minor: int, currency: str) -> str:
    """`minor` as a decimal string in major units with the currency's digits: 1250 USD -> "12.50"."""
    return str(Money(minor, currency)).rpartition(" ")[0]


def _text(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA) else value


def csv_row(row: CommissionRow) -> list[str]:
    """The cells of one entry, in COLUMNS order."""
    return [
        row.id,
        utc_text(row.created_at),
        str(row.merchant_id),
        _text(row.creator_ref),
        str(row.program_id),
        row.link_code or "",
        row.order_id,
        _text(row.platform_order_id),
        str(row.order_line_id),
        row.kind,
        _text(row.cause),
        row.reverses or "",
        row.state,
        row.currency,
        str(row.rate_bps),
        str(row.base_minor),
        major_units(row.base_minor, row.currency),
        str(row.amount_minor),
        major_units(row.amount_minor, row.currency),
        utc_text(row.hold_until),
        utc_text(row.approved_at),
        utc_text(row.paid_at),
        _text(row.payout_id),
    ]


def iter_csv(
    db: Database, filters: CommissionFilter, scope: Scope, *, batch: int | None = None
) -> Iterator[str]:
    """The CSV text of the entries matching `filters`: the header line, then chunks of up to `batch` (BATCH) rows.

    The rows are read through one session held while the generator runs (a server-side cursor on
    PostgreSQL), `batch` at a time; closing the generator early closes the session.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    query = (
        commission_query(filters, scope)
        .order_by(CommissionEntry.created_at, CommissionEntry.id)
        .execution_options(yield_per=batch or BATCH)
    )
    count = 0
    with db.session() as session:
        for partition in session.execute(query).partitions():
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(csv_row(commission_row(row)) for row in partition)
            count += len(partition)
            yield buffer.getvalue()
    logger.info("commissions exported", extra={"rows": count, "merchant_id": filters.merchant_id})
