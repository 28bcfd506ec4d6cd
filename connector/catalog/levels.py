"""Sellable stock: store quantity minus held units minus the merchant's buffer, never below zero.

This module is the one definition of which reservations hold stock (`holding()`), used by checkout's
counters (`connector.stock.rebuild`), the catalog sync, store stock events and the catalog API alike:

- every `active` hold (an order not yet confirmed; a live pin's allocation row, which holds what is unsold
  and shrinks as the pin's orders, rows of their own, are sold);
- a `confirmed` hold until the store's own level has caught up with the sale: a level at the merchant's
  selling location written after the confirmation, about a store time no earlier than the reservation (so a
  confirmed unit is not sold twice in the window before the store's stock webhook lowers its quantity).
  Once settled (`settled_at`) a confirmed hold never counts again.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from connector.infra import bulk_insert
from connector.infra.models import InventoryLevel, Merchant, Reservation

DEFAULT_LOCATION: Final = "default"
"""The selling location of a merchant that names none."""
ACTIVE: Final = "active"
CONFIRMED: Final = "confirmed"

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])

HomeLevel = aliased(InventoryLevel, name="home_level")
"""The reserved variant's level at its merchant's selling location (outer-joined by `holding_rows`)."""


def sellable(available: int | None, reserved: int, buffer: int) -> int | None:
    """None means the store does not track stock for the variant (sold without a limit)."""
    if available is None:
        return None
    return max(0, available - reserved - buffer)


def caught_up(level: Any, row: Any) -> bool:
    """Does the store level `level` already reflect the sale the confirmed hold `row` stands for? (The same
    rule as `holding()`, for a level and a reservation already in memory.)"""
    if level is None:
        return False
    if level.updated_at <= row.updated_at:
        return False
    return level.source_updated_at is None or level.source_updated_at >= row.created_at


def holding() -> ColumnElement[bool]:
    """The SQL condition of a reservation that holds stock, over `Reservation` outer-joined to `HomeLevel`."""
    not_caught_up = or_(
        HomeLevel.id.is_(None),
        HomeLevel.updated_at <= Reservation.updated_at,
        and_(
            HomeLevel.source_updated_at.is_not(None),
            HomeLevel.source_updated_at < Reservation.created_at,
        ),
    )
    return or_(
        Reservation.state == ACTIVE,
        and_(Reservation.state == CONFIRMED, Reservation.settled_at.is_(None), not_caught_up),
    )


def holding_rows(statement: SelectT) -> SelectT:
    """`statement` (a select from `Reservation`) joined to each reservation's home level and restricted to
    the reservations that hold stock."""
    return (
        statement.join(Merchant, Merchant.id == Reservation.merchant_id)
        .outerjoin(
            HomeLevel,
            and_(
                HomeLevel.variant_id == Reservation.variant_id,
                HomeLevel.location_ref == func.coalesce(Merchant.location_ref, DEFAULT_LOCATION),
            ),
        )
        .where(holding())
    )


def reserved_by_variant(
    session: Session, variant_ids: Collection[int], dialect: str | None = None
) -> dict[int, int]:
    """Units held per variant (`holding()`), in one query for the whole batch (the ids bound as one array).

    Variants without holds are absent. `dialect` defaults to the session's."""
    if not variant_ids:
        return {}
    name = dialect or session.get_bind().dialect.name
    values = bulk_insert.param_values(name, sorted(set(variant_ids)))
    rows = session.execute(_reserved_statement(name), {"variant_ids": values})
    return {variant_id: int(total or 0) for variant_id, total in rows}


@functools.cache
def _reserved_statement(dialect: str) -> Select[int, Any]:
    """`reserved_by_variant`'s query, built once per dialect (its ids bound at execution)."""
    return holding_rows(
        select(Reservation.variant_id, func.sum(Reservation.quantity)).where(
            bulk_insert.in_param(dialect, Reservation.variant_id, "variant_ids")
        )
    ).group_by(Reservation.variant_id)


def sellable_by_variant(session: Session, variants: Sequence[Any]) -> dict[int, int | None]:
    """Sellable stock per variant id (None: not tracked): one query for the levels at each merchant's selling
    location, one for the holds (`reserved_by_variant`, the figure checkout's counters take)."""
    tracked = [variant.id for variant in variants if variant.inventory_tracked]
    result: dict[int, int | None] = {
        variant.id: None for variant in variants if not variant.inventory_tracked
    }
    if not tracked:
        return result
    dialect = session.get_bind().dialect.name
    counted = {
        variant_id: (available, buffer)
        for variant_id, available, buffer in session.execute(
            select(InventoryLevel.variant_id, InventoryLevel.available, Merchant.inventory_buffer)
            .join(Merchant, Merchant.id == InventoryLevel.merchant_id)
            .where(
                bulk_insert.in_values(dialect, InventoryLevel.variant_id, tracked),
                InventoryLevel.location_ref == func.coalesce(Merchant.location_ref, DEFAULT_LOCATION),
            )
        )
    }
    reserved = reserved_by_variant(session, tracked, dialect)
    for variant_id in tracked:
        available, buffer = counted.get(variant_id, (0, 0))  # tracked but never counted: nothing to sell
        result[variant_id] = sellable(available, reserved.get(variant_id, 0), buffer)
    return result
