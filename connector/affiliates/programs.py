"""Commission programs: a merchant's open program (a default rate, per-product and per-collection rates, every
creator may promote) and targeted offers to one named creator (rates for chosen products or collections,
which win over the open rates for that creator); their attribution window, hold period and rate lock; and
the rate a creator earns.

The rate a creator earns on a product, first found wins: (1) the creator's targeted offer, its rate of the
product, else its highest rate of a collection the product is in; (2) the open program's rate of the
product; (3) its highest rate of a collection the product is in; (4) its default rate. Collections are the
store's, as the catalog sync last read them (`connector.affiliates.collection_rates`).

Rules: rates are basis points from 100 (1%) to 8000 (80%); windows are positive; products and collections
belong to the program's merchant. A merchant has at most one active open program and one active targeted offer
per creator (409 otherwise: change the one there is). Ending a program is final: orders after its end earn
nothing under it. Refusals are `RefusedError`s with stable codes: `merchant_not_found`, `product_not_found`,
`collection_not_found`, `rate_out_of_range`, `window_not_positive`, `program_not_found`, `program_exists`,
`program_ended`, `invalid_program`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.affiliates import collection_rates
from connector.affiliates.amounts import MAX_RATE_BPS, MIN_RATE_BPS
from connector.domain.errors import RefusedError
from connector.domain.timestamps import iso
from connector.infra import runtime
from connector.infra.models import AffiliateProgram, AffiliateProgramRate, Merchant, Product

logger = logging.getLogger(__name__)

OPEN, TARGETED = "open", "targeted"
ACTIVE, ENDED = "active", "ended"
MAX_WINDOW_SECONDS: Final = 366 * 86400
_SETTINGS = ("attribution_window_seconds", "hold_seconds", "rate_lock_seconds")


def _refused(status: int, code: str, field: str, message: str) -> RefusedError:
    return RefusedError(status, code, message, errors=[{"field": field, "message": message}])


# --- validation ----------------------------------------------------------------------------------------------------


def _check_rate(field: str, rate: int) -> None:
    if not MIN_RATE_BPS <= rate <= MAX_RATE_BPS:
        raise _refused(
            422,
            "rate_out_of_range",
            field,
            f"{field}: a rate is {MIN_RATE_BPS} to {MAX_RATE_BPS} basis points (1% to 80%), not {rate}",
        )


def _check_windows(values: Mapping[str, int | None]) -> None:
    for name in _SETTINGS:
        value = values.get(name)
        if value is not None and not 0 < value <= MAX_WINDOW_SECONDS:
            raise _refused(
                422,
                "window_not_positive",
                name,
                f"{name} must be a positive number of seconds, at most {MAX_WINDOW_SECONDS}",
            )


def _check_collections(session: Session, merchant_id: int, rates: Mapping[int, int | None]) -> None:
    for collection_id, rate in rates.items():
        if rate is not None:
            _check_rate(f"{collection_rates.FIELD}.{collection_id}", rate)
    collection_rates.check(session, merchant_id, rates)


def _check_products(session: Session, merchant_id: int, rates: Mapping[int, int | None]) -> None:
    for product_id, rate in rates.items():
        if rate is not None:
            _check_rate(f"product_rates.{product_id}", rate)
    if not rates:
        return
    found = set(
        session.scalars(
            select(Product.id).where(Product.merchant_id == merchant_id, Product.id.in_(list(rates)))
        )
    )
    missing = sorted(set(rates) - found)
    if missing:
        raise _refused(
            422,
            "product_not_found",
            f"product_rates.{missing[0]}",
            f"product {missing[0]} is not a product of merchant {merchant_id}",
        )


def _merchant(session: Session, client_id: int, merchant_id: int) -> Merchant:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None or merchant.platform_client_id != client_id:
        raise _refused(422, "merchant_not_found", "merchant_id", f"merchant {merchant_id} does not exist")
    return merchant


def owned_program(session: Session, client_id: int, program_id: int) -> AffiliateProgram:
    """The program, if a merchant of `client_id` runs it; else a 404 `program_not_found`."""
    program = session.get(AffiliateProgram, program_id)
    merchant = session.get(Merchant, program.merchant_id) if program is not None else None
    if program is None or merchant is None or merchant.platform_client_id != client_id:
        raise RefusedError(404, "program_not_found", f"program {program_id} not found")
    return program


# --- writes --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    merchant_id: int
    kind: str
    name: str
    creator_ref: str | None = None
    default_rate_bps: int | None = None
    product_rates: Mapping[int, int] | None = None
    collection_rates: Mapping[int, int] | None = None
    attribution_window_seconds: int | None = None
    hold_seconds: int | None = None
    rate_lock_seconds: int | None = None


def _check_shape(spec: ProgramSpec) -> None:
    if spec.kind == OPEN:
        if spec.creator_ref is not None:
            raise _refused(422, "invalid_program", "creator_ref", "an open program names no creator")
        if spec.default_rate_bps is None:
            raise _refused(422, "invalid_program", "default_rate_bps", "an open program needs a default rate")
        _check_rate("default_rate_bps", spec.default_rate_bps)
    else:
        if spec.creator_ref is None:
            raise _refused(422, "invalid_program", "creator_ref", "a targeted offer names its creator")
        if spec.default_rate_bps is not None:
            raise _refused(
                422, "invalid_program", "default_rate_bps", "a targeted offer has rates for chosen products"
            )
        if not spec.product_rates and not spec.collection_rates:
            raise _refused(
                422, "invalid_program", "product_rates", "a targeted offer needs product or collection rates"
            )


def _active_twin(session: Session, spec: ProgramSpec) -> AffiliateProgram | None:
    query = select(AffiliateProgram).where(
        AffiliateProgram.merchant_id == spec.merchant_id,
        AffiliateProgram.kind == spec.kind,
        AffiliateProgram.status == ACTIVE,
    )
    if spec.kind == TARGETED:
        query = query.where(AffiliateProgram.creator_ref == spec.creator_ref)
    return session.scalars(query.limit(1)).first()


def create_program(rt: runtime.Runtime, client_id: int, spec: ProgramSpec) -> dict[str, Any]:
    """Start a program of one of the client's merchants; its answer is `program_body`."""
    _check_shape(spec)
    _check_windows({name: getattr(spec, name) for name in _SETTINGS})
    with rt.db.session() as session:
        _merchant(session, client_id, spec.merchant_id)
        rates = dict(spec.product_rates or {})
        _check_products(session, spec.merchant_id, rates)
        _check_collections(session, spec.merchant_id, dict(spec.collection_rates or {}))
        twin = _active_twin(session, spec)
        if twin is not None:
            who = f" for creator {spec.creator_ref}" if spec.kind == TARGETED else ""
            raise RefusedError(
                409,
                "program_exists",
                f"merchant {spec.merchant_id} already runs {spec.kind} program {twin.id}{who}: change or end it",
                program_id=twin.id,
            )
        program = AffiliateProgram(
            merchant_id=spec.merchant_id,
            kind=spec.kind,
            name=spec.name,
            creator_ref=spec.creator_ref,
            default_rate_bps=spec.default_rate_bps,
            status=ACTIVE,
            **{name: getattr(spec, name) for name in _SETTINGS if getattr(spec, name) is not None},
        )
        session.add(program)
        session.flush()
        session.add_all(
            AffiliateProgramRate(program_id=program.id, product_id=product_id, rate_bps=rate)
            for product_id, rate in rates.items()
        )
        collection_rates.write(session, program.id, dict(spec.collection_rates or {}))
        session.flush()
        body = program_body(session, program)
    logger.info(
        "affiliate program created",
        extra={"program_id": body["id"], "merchant_id": spec.merchant_id, "kind": spec.kind},
    )
    return body


def update_program(
    rt: runtime.Runtime, client_id: int, program_id: int, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change a program: name, default rate, windows, product and collection rates (merged: a null rate
    removes the product's or collection's rate) or `status: ended`. A cut applies to existing links when
    their lock ends; a raise at once."""
    _check_windows({name: changes.get(name) for name in _SETTINGS})
    with rt.db.session() as session:
        program = owned_program(session, client_id, program_id)
        if program.status == ENDED:
            raise RefusedError(409, "program_ended", f"program {program_id} has ended; start a new one")
        _apply_changes(session, program, changes)
        session.flush()
        body = program_body(session, program)
    logger.info("affiliate program changed", extra={"program_id": program_id, "fields": sorted(changes)})
    return body


def _apply_changes(session: Session, program: AffiliateProgram, changes: Mapping[str, Any]) -> None:
    if "default_rate_bps" in changes:
        rate = changes["default_rate_bps"]
        if program.kind != OPEN or rate is None:
            raise _refused(
                422, "invalid_program", "default_rate_bps", "only an open program has a default rate"
            )
        _check_rate("default_rate_bps", rate)
        program.default_rate_bps = rate
    rates: Mapping[int, int | None] = changes.get("product_rates") or {}
    _check_products(session, program.merchant_id, rates)
    for product_id, rate in rates.items():
        session.execute(
            delete(AffiliateProgramRate).where(
                AffiliateProgramRate.program_id == program.id, AffiliateProgramRate.product_id == product_id
            )
        )
        if rate is not None:
            session.add(AffiliateProgramRate(program_id=program.id, product_id=product_id, rate_bps=rate))
    by_collection: Mapping[int, int | None] = changes.get("collection_rates") or {}
    _check_collections(session, program.merchant_id, by_collection)
    collection_rates.write(session, program.id, by_collection)
    if changes.get("name") is not None:
        program.name = changes["name"]
    for name in _SETTINGS:
        if changes.get(name) is not None:
            setattr(program, name, changes[name])
    if changes.get("status") == ENDED:
        program.status = ENDED
        program.ended_at = datetime.now(UTC)


def get_program(rt: runtime.Runtime, client_id: int, program_id: int) -> dict[str, Any]:
    with rt.db.session() as session:
        return program_body(session, owned_program(session, client_id, program_id))


def program_body(session: Session, program: AffiliateProgram) -> dict[str, Any]:
    rates = session.execute(
        select(AffiliateProgramRate.product_id, AffiliateProgramRate.rate_bps)
        .where(AffiliateProgramRate.program_id == program.id)
        .order_by(AffiliateProgramRate.product_id)
    ).all()
    return {
        "id": program.id,
        "merchant_id": program.merchant_id,
        "kind": program.kind,
        "name": program.name,
        "creator_ref": program.creator_ref,
        "default_rate_bps": program.default_rate_bps,
        "product_rates": [{"product_id": p, "rate_bps": r} for p, r in rates],
        "collection_rates": collection_rates.listed(session, program.id),
        "attribution_window_seconds": program.attribution_window_seconds,
        "hold_seconds": program.hold_seconds,
        "rate_lock_seconds": program.rate_lock_seconds,
        "status": program.status,
        "created_at": iso(program.created_at),
        "updated_at": iso(program.updated_at),
        "ended_at": iso(program.ended_at) if program.ended_at else None,
    }


# --- the rate a creator earns ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    program_id: int
    rate_bps: int
    attribution_window_seconds: int
    hold_seconds: int
    rate_lock_seconds: int


def _rate(program: AffiliateProgram, rate_bps: int) -> Rate:
    return Rate(
        program.id,
        rate_bps,
        program.attribution_window_seconds,
        program.hold_seconds,
        program.rate_lock_seconds,
    )


def current_rates(
    session: Session, merchant_id: int, creator_ref: str, product_ids: list[int]
) -> dict[int, Rate]:
    """The rate in force now for `creator_ref` on each product of `merchant_id` that earns one, in the order
    of precedence the module states: the creator's targeted offer (its product rate, else its best collection
    rate), else the open program's product rate, best collection rate or default rate."""
    programs = list(
        session.scalars(
            select(AffiliateProgram).where(
                AffiliateProgram.merchant_id == merchant_id,
                AffiliateProgram.status == ACTIVE,
                (AffiliateProgram.kind == OPEN)
                | ((AffiliateProgram.kind == TARGETED) & (AffiliateProgram.creator_ref == creator_ref)),
            )
        )
    )
    if not programs or not product_ids:
        return {}
    program_ids = [p.id for p in programs]
    rated = _product_rates(session, program_ids, product_ids)
    by_collection = collection_rates.best(session, program_ids, product_ids)
    ordered = [p for p in programs if p.kind == TARGETED] + [p for p in programs if p.kind == OPEN]
    found: dict[int, Rate] = {}
    for product_id in product_ids:
        for program in ordered:
            key = (program.id, product_id)
            rate = rated.get(key, by_collection.get(key))
            if rate is None and program.kind == OPEN:
                rate = program.default_rate_bps
            if rate is not None:
                found[product_id] = _rate(program, rate)
                break
    return found


def _product_rates(
    session: Session, program_ids: list[int], product_ids: list[int]
) -> dict[tuple[int, int], int]:
    """(program id, product id) -> the program's rate of the product."""
    return {
        (program_id, product_id): rate
        for program_id, product_id, rate in session.execute(
            select(
                AffiliateProgramRate.program_id,
                AffiliateProgramRate.product_id,
                AffiliateProgramRate.rate_bps,
            ).where(
                AffiliateProgramRate.program_id.in_(program_ids),
                AffiliateProgramRate.product_id.in_(product_ids),
            )
        )
    }


def program_rates(
    session: Session, program_id: int, creator_ref: str, product_ids: list[int]
) -> dict[int, Rate]:
    """The rate each product earns under one program (a live session's): its product rate, else its best
    collection rate, else the open program's default; nothing when the program has ended or is offered to
    another creator."""
    program = session.get(AffiliateProgram, program_id)
    if program is None or program.status != ACTIVE or not product_ids:
        return {}
    if program.kind == TARGETED and program.creator_ref != creator_ref:
        return {}
    rated = _product_rates(session, [program.id], product_ids)
    by_collection = collection_rates.best(session, [program.id], product_ids)
    found: dict[int, Rate] = {}
    for product_id in product_ids:
        key = (program.id, product_id)
        rate = rated.get(key, by_collection.get(key))
        if rate is None and program.kind == OPEN:
            rate = program.default_rate_bps
        if rate is not None:
            found[product_id] = _rate(program, rate)
    return found
