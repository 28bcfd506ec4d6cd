"""Attribution: which creator an order placed on the platform is credited to, decided before checkout.

An order bought in a creator's live session is the session creator's, whatever it carries (set by
`connector.orders.live_checkout` from the session, so a refused flash-sale purchase reads no database; its
rates are those that pay the creator when it accrues). Otherwise, in this order of precedence:
1. the most recent of the order's clicks that is still inside its program's attribution window (last
   click wins);
2. else a link code, while a program pays the link's creator on its product.

A click or code that is unknown, expired, of another merchant or of a link no program pays any more is
ignored: the order goes through without attribution. The result is stored on the order
(`connector.orders.accept`); the commission ledger reads it when the store confirms the order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.affiliates import clicks, programs
from connector.domain.orders import Attribution
from connector.infra import runtime
from connector.infra.models import AffiliateLink, Variant

logger = logging.getLogger(__name__)

CLICK, CODE = "click", "code"


@dataclass(frozen=True, slots=True)
class Claim:
    """What an order carries: click ids (any order) and a link code, each optional."""

    click_ids: Sequence[str] = ()
    link_code: str | None = None


@dataclass(frozen=True, slots=True)
class FoundClick:
    click_id: str
    link_id: int
    occurred_at: datetime


MAX_CLICK_IDS = 20
"""Click ids of one order that are looked at (the most a checkout carries is a handful)."""


def find_clicks(session: Session, click_ids: Sequence[str], now: datetime) -> list[FoundClick]:
    """The clicks among `click_ids` that this service signed and whose link still exists, whether already
    written or still waiting in the click buffer (`clicks.resolve_click`); forged ids are dropped."""
    found = []
    for click_id in dict.fromkeys(click_ids[:MAX_CLICK_IDS]):
        click = clicks.resolve_click(session, click_id, now)
        if click is not None:
            found.append(FoundClick(click.click_id, click.link_id, click.occurred_at))
    return found


def _order_merchant(session: Session, variant_ids: Sequence[int]) -> int | None:
    merchants = set(session.scalars(select(Variant.merchant_id).where(Variant.id.in_(list(variant_ids)))))
    return merchants.pop() if len(merchants) == 1 else None


def _by_link(
    session: Session, link: AffiliateLink, via: str, click: FoundClick | None, now: datetime
) -> Attribution | None:
    rate = programs.current_rates(session, link.merchant_id, link.creator_ref, [link.product_id]).get(
        link.product_id
    )
    if rate is None:
        return None
    if click is not None and click.occurred_at + timedelta(seconds=rate.attribution_window_seconds) < now:
        return None
    return Attribution(
        via=via,
        creator_ref=link.creator_ref,
        program_id=rate.program_id,
        link_id=link.id,
        link_code=link.code,
        click_id=click.click_id if click is not None else None,
    )


def _by_clicks(
    session: Session, merchant_id: int, click_ids: Sequence[str], now: datetime
) -> Attribution | None:
    recent_first = sorted(find_clicks(session, click_ids, now), key=lambda c: c.occurred_at, reverse=True)
    for click in recent_first:
        link = session.get(AffiliateLink, click.link_id)
        if link is None or link.merchant_id != merchant_id or click.occurred_at > now:
            continue
        found = _by_link(session, link, CLICK, click, now)
        if found is not None:
            return found
    return None


def resolve_in(
    session: Session, claim: Claim, variant_ids: Sequence[int], now: datetime
) -> Attribution | None:
    merchant_id = _order_merchant(session, variant_ids)
    if merchant_id is None:
        return None
    found = _by_clicks(session, merchant_id, claim.click_ids, now)
    if found is None and claim.link_code:
        link = session.scalars(select(AffiliateLink).where(AffiliateLink.code == claim.link_code)).first()
        if link is not None and link.merchant_id == merchant_id:
            found = _by_link(session, link, CODE, None, now)
    return found


def resolve(rt: runtime.Runtime, claim: Claim, variant_ids: Sequence[int]) -> Attribution | None:
    """The creator an order of `variant_ids` carrying `claim` is credited to, or None."""
    if not claim.click_ids and not claim.link_code:
        return None
    with rt.db.session() as session:
        found = resolve_in(session, claim, variant_ids, datetime.now(UTC))
    if found is None and (claim.click_ids or claim.link_code):
        logger.info(
            "order attribution ignored",
            extra={"clicks": len(claim.click_ids), "code": bool(claim.link_code)},
        )
    return found
