"""Reading merchants' affiliate programs: programs with their link counts, one program with its rates.

Queries only, scoped as in `connector.affiliates.reports` (a subquery of visible merchant ids, or None for
support); a program outside the scope is "not found".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.affiliates.reports import Scope, in_scope
from connector.domain.errors import NotFoundError
from connector.infra.models import AffiliateLink, AffiliateProgram, AffiliateProgramRate, Product

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProgramRow:
    id: int
    merchant_id: int
    kind: str
    name: str
    creator_ref: str | None
    default_rate_bps: int | None
    attribution_window_seconds: int
    hold_seconds: int
    rate_lock_seconds: int
    status: str
    links: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RateRow:
    product_id: int
    product_title: str
    rate_bps: int


def _program_row(program: AffiliateProgram, links: int) -> ProgramRow:
    return ProgramRow(
        id=program.id,
        merchant_id=program.merchant_id,
        kind=program.kind,
        name=program.name,
        creator_ref=program.creator_ref,
        default_rate_bps=program.default_rate_bps,
        attribution_window_seconds=program.attribution_window_seconds,
        hold_seconds=program.hold_seconds,
        rate_lock_seconds=program.rate_lock_seconds,
        status=program.status,
        links=links,
        created_at=program.created_at,
    )


def _link_counts(session: Session, program_ids: Sequence[int]) -> dict[int, int]:
    if not program_ids:
        return {}
    return {
        program_id: int(count)
        for program_id, count in session.execute(
            select(AffiliateLink.program_id, func.count())
            .where(AffiliateLink.program_id.in_(list(program_ids)))
            .group_by(AffiliateLink.program_id)
        )
    }


def programs(
    session: Session, scope: Scope, *, merchant_id: int | None = None, status: str | None = None
) -> list[ProgramRow]:
    """Programs by id, with how many links each has."""
    query = select(AffiliateProgram).order_by(AffiliateProgram.id)
    if merchant_id is not None:
        query = query.where(AffiliateProgram.merchant_id == merchant_id)
    if status is not None:
        query = query.where(AffiliateProgram.status == status)
    found = session.scalars(in_scope(query, AffiliateProgram.merchant_id, scope)).all()
    counts = _link_counts(session, [program.id for program in found])
    return [_program_row(program, counts.get(program.id, 0)) for program in found]


def program_detail(session: Session, program_id: int, scope: Scope) -> tuple[ProgramRow, list[RateRow]]:
    """One program and its per-product rates; NotFoundError `program_not_found` outside the scope."""
    program = session.scalar(
        in_scope(
            select(AffiliateProgram).where(AffiliateProgram.id == program_id),
            AffiliateProgram.merchant_id,
            scope,
        )
    )
    if program is None:
        raise NotFoundError(f"program {program_id} not found", code="program_not_found")
    rates = [
        RateRow(product_id=product_id, product_title=title, rate_bps=rate)
        for product_id, title, rate in session.execute(
            select(AffiliateProgramRate.product_id, Product.title, AffiliateProgramRate.rate_bps)
            .join(Product, Product.id == AffiliateProgramRate.product_id)
            .where(AffiliateProgramRate.program_id == program.id)
            .order_by(AffiliateProgramRate.product_id)
        )
    ]
    return _program_row(program, _link_counts(session, [program.id]).get(program.id, 0)), rates
