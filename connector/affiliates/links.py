"""Affiliate links: a creator's short, unguessable link to a product, one per (creator, product), with the
rate in force when it was made locked for the program's lock period.

Rate lock: while a link's lock lasts it earns at least its locked rate (a cut waits for the lock to end);
a rate higher than the locked one applies at once. A program that ended pays nothing, locked or not.

Refusals: `product_not_found` (no such product or variant of the client's merchants), `not_in_program`
(no active program pays this creator on the product).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.affiliates import programs
from connector.domain.errors import RefusedError
from connector.domain.timestamps import iso
from connector.infra import runtime
from connector.infra.models import AffiliateLink, Merchant, Product, Variant

logger = logging.getLogger(__name__)

CODE_BYTES: Final = 8
"""64 random bits: an 11-character URL-safe code."""
MAX_ATTEMPTS: Final = 5


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def effective_rate(link: AffiliateLink, current: int | None, now: datetime) -> int | None:
    """The rate a link earns at `now`, given the rate in force (None: nothing pays it any more)."""
    if current is None:
        return None
    if now < link.locked_until and link.locked_rate_bps > current:
        return link.locked_rate_bps
    return current


@dataclass(frozen=True, slots=True)
class Target:
    merchant_id: int
    product_id: int
    variant_id: int | None


def _target(session: Session, client_id: int, product_id: int | None, variant_id: int | None) -> Target:
    if variant_id is not None:
        row = session.execute(
            select(Variant.merchant_id, Variant.product_id, Merchant.platform_client_id)
            .join(Merchant, Merchant.id == Variant.merchant_id)
            .where(Variant.id == variant_id)
        ).first()
        field, named = "variant_id", f"variant {variant_id}"
        if row is not None and product_id is not None and row.product_id != product_id:
            row = None
    else:
        row = session.execute(
            select(Product.merchant_id, Product.id.label("product_id"), Merchant.platform_client_id)
            .join(Merchant, Merchant.id == Product.merchant_id)
            .where(Product.id == product_id)
        ).first()
        field, named = "product_id", f"product {product_id}"
    if row is None or row.platform_client_id != client_id:
        raise RefusedError(
            422,
            "product_not_found",
            f"{named} does not exist",
            errors=[{"field": field, "message": "no such product"}],
        )
    return Target(row.merchant_id, row.product_id, variant_id)


def link_body(link: AffiliateLink, base_url: str, rate_bps: int | None) -> dict[str, Any]:
    return {
        "id": link.id,
        "code": link.code,
        "url": f"{base_url.rstrip('/')}/l/{link.code}",
        "creator_ref": link.creator_ref,
        "merchant_id": link.merchant_id,
        "product_id": link.product_id,
        "variant_id": link.variant_id,
        "program_id": link.program_id,
        "rate_bps": rate_bps,
        "locked_rate_bps": link.locked_rate_bps,
        "locked_until": iso(link.locked_until),
        "created_at": iso(link.created_at),
    }


def _existing(session: Session, creator_ref: str, product_id: int) -> AffiliateLink | None:
    return session.scalars(
        select(AffiliateLink).where(
            AffiliateLink.creator_ref == creator_ref, AffiliateLink.product_id == product_id
        )
    ).first()


def _answer(session: Session, link: AffiliateLink, base_url: str) -> dict[str, Any]:
    rate = programs.current_rates(session, link.merchant_id, link.creator_ref, [link.product_id]).get(
        link.product_id
    )
    now = datetime.now(UTC)
    return link_body(link, base_url, effective_rate(link, rate.rate_bps if rate else None, now))


def create_link(
    rt: runtime.Runtime,
    client_id: int,
    *,
    creator_ref: str,
    product_id: int | None,
    variant_id: int | None,
    base_url: str,
) -> tuple[dict[str, Any], bool]:
    """The creator's link to the product (made now, True; or the one made before, False)."""
    for _attempt in range(MAX_ATTEMPTS):
        try:
            with rt.db.session() as session:
                target = _target(session, client_id, product_id, variant_id)
                link = _existing(session, creator_ref, target.product_id)
                if link is not None:
                    return _answer(session, link, base_url), False
                rate = programs.current_rates(session, target.merchant_id, creator_ref, [target.product_id])
                found = rate.get(target.product_id)
                if found is None:
                    raise RefusedError(
                        422,
                        "not_in_program",
                        f"no active program pays creator {creator_ref} on product {target.product_id}",
                        errors=[{"field": "product_id", "message": "not in an active program"}],
                    )
                now = datetime.now(UTC)
                link = AffiliateLink(
                    code=new_code(),
                    merchant_id=target.merchant_id,
                    program_id=found.program_id,
                    creator_ref=creator_ref,
                    product_id=target.product_id,
                    variant_id=target.variant_id,
                    locked_rate_bps=found.rate_bps,
                    locked_until=now + timedelta(seconds=found.rate_lock_seconds),
                    created_at=now,
                    updated_at=now,
                )
                session.add(link)
                session.flush()
                body = link_body(link, base_url, found.rate_bps)
        except IntegrityError:
            continue  # the same link made concurrently (answered next round), or a code drawn twice
        logger.info(
            "affiliate link created",
            extra={
                "link_id": body["id"],
                "merchant_id": body["merchant_id"],
                "product_id": body["product_id"],
            },
        )
        return body, True
    raise RefusedError(409, "link_conflict", "the link could not be made; try again")
