"""Per-collection rates of commission programs: a program may pay a rate on every product of one of its
merchant's store collections (as the catalog sync last read them), below a product's own rate and above the
open program's default.

A product in several rated collections earns the highest of their rates. Collections are Storelink's
collection ids (`GET /v1/collections`, or a product's `collections`); one the program's merchant does not
have is a 422 `collection_not_found`. The rate in force is worked out in `connector.affiliates.programs`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from connector.domain.errors import RefusedError
from connector.infra.models_groups import AffiliateProgramCollectionRate as RateRow
from connector.infra.models_groups import Collection, ProductCollection

logger = logging.getLogger(__name__)

FIELD = "collection_rates"


def check(session: Session, merchant_id: int, rates: Mapping[int, int | None]) -> None:
    """Every collection of `rates` is one of the merchant's; a 422 `collection_not_found` otherwise."""
    if not rates:
        return
    found = set(
        session.scalars(
            select(Collection.id).where(Collection.merchant_id == merchant_id, Collection.id.in_(list(rates)))
        )
    )
    missing = sorted(set(rates) - found)
    if missing:
        message = f"collection {missing[0]} is not a collection of merchant {merchant_id}"
        raise RefusedError(
            422,
            "collection_not_found",
            message,
            errors=[{"field": f"{FIELD}.{missing[0]}", "message": message}],
        )


def write(session: Session, program_id: int, rates: Mapping[int, int | None]) -> None:
    """Merge `rates` into the program's: a rate sets the collection's, None removes it."""
    if not rates:
        return
    session.execute(
        delete(RateRow).where(RateRow.program_id == program_id, RateRow.collection_id.in_(list(rates)))
    )
    session.add_all(
        RateRow(program_id=program_id, collection_id=collection_id, rate_bps=rate)
        for collection_id, rate in rates.items()
        if rate is not None
    )


def listed(session: Session, program_id: int) -> list[dict[str, Any]]:
    """The program's collection rates by collection id, with each collection's handle and title."""
    return [
        {"collection_id": cid, "handle": handle, "title": title, "rate_bps": rate}
        for cid, handle, title, rate in session.execute(
            select(RateRow.collection_id, Collection.handle, Collection.title, RateRow.rate_bps)
            .join(Collection, Collection.id == RateRow.collection_id)
            .where(RateRow.program_id == program_id)
            .order_by(RateRow.collection_id)
        )
    ]


def best(
    session: Session, program_ids: Sequence[int], product_ids: Sequence[int]
) -> dict[tuple[int, int], int]:
    """(program id, product id) -> the highest rate a program pays on a collection the product is in."""
    if not program_ids or not product_ids:
        return {}
    return {
        (program_id, product_id): int(rate)
        for program_id, product_id, rate in session.execute(
            select(RateRow.program_id, ProductCollection.product_id, func.max(RateRow.rate_bps))
            .join(ProductCollection, ProductCollection.collection_id == RateRow.collection_id)
            .where(
                RateRow.program_id.in_(list(program_ids)), ProductCollection.product_id.in_(list(product_ids))
            )
            .group_by(RateRow.program_id, ProductCollection.product_id)
        )
    }
