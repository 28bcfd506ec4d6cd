"""Sellable stock: store quantity minus active reservations minus the merchant's buffer, never below zero."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector import bulk
from connector.models import Reservation


def sellable(available: int | None, reserved: int, buffer: int) -> int | None:
    """None means the store does not track stock for the variant (sold without a limit)."""
    if available is None:
        return None
    return max(0, available - reserved - buffer)


def reserved_by_variant(session: Session, variant_ids: Collection[int], dialect: str) -> dict[int, int]:
    """Units held by active reservations, per variant (the ids bound as one array, as every batch lookup)."""
    if not variant_ids:
        return {}
    rows = session.execute(
        select(Reservation.variant_id, func.sum(Reservation.quantity))
        .where(
            Reservation.state == "active", bulk.in_values(dialect, Reservation.variant_id, list(variant_ids))
        )
        .group_by(Reservation.variant_id)
    )
    return {variant_id: int(total or 0) for variant_id, total in rows}
