"""The read model of a showcase: the items a viewer sees now, in order, with live price and sellable stock.

Order: the pinned hand-placed products (by position), then the rule's products (not already placed), then the
unpinned hand-placed ones. A product shows while it is `active` with at least one active variant: archived,
draft and deleted products drop out (and come back when the store brings them back). Its price is its lead
variant's (the cheapest one that can be bought, else the cheapest): `price` is the regular price (the
compare-at price when it is above the selling price) and `sale_price` the selling price when it is lower.
Sellable stock is the checkout definition (`connector.catalog.levels.sellable`: store level at the
merchant's selling location - active holds - the merchant's buffer, never below zero), summed over the
product's live variants; null when a variant's stock is not tracked (sold without a limit).

Out of stock (nothing sellable): a `hide` showcase leaves the product out, a `sold_out` one shows it marked
sold out. A creator's showcase shows only products some active program lets the creator promote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.affiliates import programs
from connector.catalog import levels
from connector.infra import bulk_insert
from connector.infra.models import Merchant, Product, Showcase, ShowcaseItem, Variant
from connector.showcases import rules

logger = logging.getLogger(__name__)

MERCHANT, CREATOR = "merchant", "creator"
HIDE, SOLD_OUT = "hide", "sold_out"
ACTIVE: Final = "active"
RULE_PAGES: Final = 20
"""Pages of rule matches read at most per view (each `max(2 * max_items, 50)` products), so a catalog that is
almost all out of stock costs a bounded read."""


@dataclass(slots=True)
class Item:
    """One product as a viewer sees it (made fresh by every read: `pinned`, `placed` are set in place)."""

    product_id: int
    merchant_id: int
    title: str
    url: str | None
    media: list[Any]
    currency: str
    price_minor: int
    sale_price_minor: int | None
    sellable: int | None
    pinned: bool = False
    placed: bool = False

    @property
    def available(self) -> bool:
        return self.sellable is None or self.sellable > 0

    def snapshot(self) -> list[Any]:
        """What the platform is told about: identity, order (by its place), price and availability."""
        return [self.product_id, self.price_minor, self.sale_price_minor, self.currency, self.available]


def _lead(variants: Sequence[Any], stock: dict[int, int | None]) -> Any:
    buyable = [v for v in variants if stock[v.id] is None or (stock[v.id] or 0) > 0]
    return min(buyable or variants, key=lambda v: (v.price_minor, v.id))


def details(session: Session, product_ids: Iterable[int]) -> dict[int, Item]:
    """The live products among `product_ids` (active, with an active variant) as items (four queries)."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    dialect = session.get_bind().dialect.name
    products = session.execute(
        select(Product.id, Product.merchant_id, Product.title, Product.url, Product.media).where(
            bulk_insert.in_values(dialect, Product.id, ids), Product.status == ACTIVE
        )
    ).all()
    variants = session.execute(
        select(
            Variant.id,
            Variant.product_id,
            Variant.price_minor,
            Variant.compare_at_minor,
            Variant.currency,
            Variant.inventory_tracked,
        ).where(bulk_insert.in_values(dialect, Variant.product_id, ids), Variant.status == ACTIVE)
    ).all()
    stock = levels.sellable_by_variant(session, variants)
    by_product: dict[int, list[Any]] = {}
    for variant in variants:
        by_product.setdefault(variant.product_id, []).append(variant)
    found: dict[int, Item] = {}
    for product in products:
        own = by_product.get(product.id)
        if not own:
            continue
        lead = _lead(own, stock)
        counts = [stock[v.id] for v in own]
        on_sale = lead.compare_at_minor is not None and lead.compare_at_minor > lead.price_minor
        found[product.id] = Item(
            product_id=product.id,
            merchant_id=product.merchant_id,
            title=product.title,
            url=product.url,
            media=list(product.media or []),
            currency=lead.currency,
            price_minor=lead.compare_at_minor if on_sale else lead.price_minor,
            sale_price_minor=lead.price_minor if on_sale else None,
            sellable=None if any(c is None for c in counts) else sum(c or 0 for c in counts),
        )
    return found


def rule_merchants(session: Session, showcase: Showcase, rule: rules.Rule) -> list[int]:
    """The merchants a rule draws from: the owner merchant, or a creator's listed merchants of its client."""
    if showcase.owner_kind == MERCHANT:
        return [showcase.merchant_id] if showcase.merchant_id is not None else []
    if not rule.merchant_ids:
        return []
    return list(
        session.scalars(
            select(Merchant.id).where(
                Merchant.id.in_(rule.merchant_ids), Merchant.platform_client_id == showcase.platform_client_id
            )
        )
    )


def promotable(session: Session, creator_ref: str, items: Iterable[Item]) -> set[int]:
    """The products among `items` some active program pays `creator_ref` on."""
    by_merchant: dict[int, list[int]] = {}
    for item in items:
        by_merchant.setdefault(item.merchant_id, []).append(item.product_id)
    allowed: set[int] = set()
    for merchant_id, product_ids in by_merchant.items():
        allowed |= set(programs.current_rates(session, merchant_id, creator_ref, product_ids))
    return allowed


def _keep(session: Session, showcase: Showcase, items: list[Item]) -> list[Item]:
    if showcase.owner_kind == CREATOR and showcase.creator_ref is not None:
        allowed = promotable(session, showcase.creator_ref, items)
        items = [item for item in items if item.product_id in allowed]
    if showcase.out_of_stock == HIDE:
        items = [item for item in items if item.available]
    return items


def _ruled(session: Session, showcase: Showcase, placed: set[int]) -> list[Item]:
    if showcase.rule is None:
        return []
    rule = rules.parse(showcase.rule)
    merchants = rule_merchants(session, showcase, rule)
    page = max(2 * showcase.max_items, 50)
    chosen: list[Item] = []
    for number in range(RULE_PAGES):
        ids = rules.matches(session, rule, merchants, offset=number * page, limit=page)
        found = details(session, [i for i in ids if i not in placed])
        batch = [found[i] for i in ids if i in found]
        if rule.in_stock_only:
            batch = [item for item in batch if item.available]
        chosen.extend(_keep(session, showcase, batch))
        if len(chosen) >= showcase.max_items or len(ids) < page:
            break
    return chosen[: showcase.max_items]


def hand_rows(session: Session, showcase_id: int) -> list[Any]:
    """The hand-placed (product_id, position, pinned) rows of a showcase, in order."""
    return list(
        session.execute(
            select(ShowcaseItem.product_id, ShowcaseItem.position, ShowcaseItem.pinned)
            .where(ShowcaseItem.showcase_id == showcase_id)
            .order_by(ShowcaseItem.position, ShowcaseItem.id)
        )
    )


def visible(session: Session, showcase: Showcase, hand: Sequence[Any] | None = None) -> list[Item]:
    """Every item a viewer of `showcase` sees now, in order (`hand`: its `hand_rows`, if already read)."""
    if hand is None:
        hand = hand_rows(session, showcase.id)
    found = details(session, [row.product_id for row in hand])
    placed: list[Item] = []
    for row in hand:
        item = found.get(row.product_id)
        if item is not None:
            item.pinned, item.placed = row.pinned, True
            placed.append(item)
    placed = _keep(session, showcase, placed)
    ruled = _ruled(session, showcase, {row.product_id for row in hand})
    return [i for i in placed if i.pinned] + ruled + [i for i in placed if not i.pinned]


def item_body(item: Item, position: int, link: dict[str, Any] | None) -> dict[str, Any]:
    """The API representation of `item` at `position` (0-based) with the creator's link, if any."""
    return {
        "position": position,
        "product_id": item.product_id,
        "merchant_id": item.merchant_id,
        "title": item.title,
        "url": item.url,
        "media": item.media,
        "price": {"amount_minor": item.price_minor, "currency": item.currency},
        "sale_price": (
            None
            if item.sale_price_minor is None
            else {"amount_minor": item.sale_price_minor, "currency": item.currency}
        ),
        "sellable": item.sellable,
        "available": item.available,
        "sold_out": not item.available,
        "pinned": item.pinned,
        "placed": item.placed,
        "link": link,
    }
