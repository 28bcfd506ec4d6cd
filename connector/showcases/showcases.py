"""Showcase writes and reads: create, change, delete, place products by hand, and read the visible items.

A showcase belongs to a platform client and to an owner: one of the client's merchants (its products only)
or a creator (`creator_ref`; products of the client's merchants whose programs pay that creator, each item
carrying the creator's affiliate link, made on first need). A handle is unique per owner.

Limits: at most `MAX_ITEMS` hand-placed products (`too_many_items`), a rule adds at most `max_items`
(1 to `MAX_RULE_ITEMS`). Refusals are `RefusedError`s with stable codes: `showcase_not_found` (404),
`merchant_not_found`, `product_not_found` (no such product of the client's merchants, or deleted),
`product_not_owned` (another merchant's product in a merchant's showcase), `not_in_program` (a product no
program lets the creator promote), `invalid_rule`, `too_many_items`, `item_not_found`, `invalid_showcase`
(422), `handle_taken` (409). Every write refreshes the showcase's announced view in its own transaction, so
a hand edit that changes what viewers see sends `showcase.updated` at once; a deletion sends
`showcase.deleted`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.affiliates import links
from connector.domain.errors import RefusedError
from connector.domain.timestamps import iso
from connector.infra import runtime
from connector.infra.models import AffiliateLink, Merchant, Product, Showcase, ShowcaseItem, utcnow
from connector.showcases import cache, events, rules, views

logger = logging.getLogger(__name__)

MAX_ITEMS: Final = 500
"""Hand-placed products per showcase."""
MAX_RULE_ITEMS: Final = 500
"""The most products a rule may add (`max_items`)."""
DEFAULT_RULE_ITEMS: Final = 100
HANDLE = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
OUT_OF_STOCK: Final = (views.HIDE, views.SOLD_OUT)
DELETED: Final = "deleted"


def _refused(status: int, code: str, field_name: str, message: str, **extra: Any) -> RefusedError:
    return RefusedError(status, code, message, errors=[{"field": field_name, "message": message}], **extra)


@dataclass(frozen=True, slots=True)
class ShowcaseSpec:
    owner_kind: str
    title: str
    handle: str
    merchant_id: int | None = None
    creator_ref: str | None = None
    out_of_stock: str = views.HIDE
    rule: dict[str, Any] | None = None
    max_items: int = DEFAULT_RULE_ITEMS
    product_ids: Sequence[int] = field(default_factory=tuple)
    pinned: bool = True


# --- validation -------------------------------------------------------------------------------------------------


def _check_fields(values: Mapping[str, Any]) -> None:
    handle = values.get("handle")
    if handle is not None and not HANDLE.fullmatch(handle):
        raise _refused(
            422,
            "invalid_showcase",
            "handle",
            "handle: 1 to 100 of a-z, 0-9 and '-', starting with a letter or digit",
        )
    mode = values.get("out_of_stock")
    if mode is not None and mode not in OUT_OF_STOCK:
        raise _refused(422, "invalid_showcase", "out_of_stock", "out_of_stock: hide or sold_out")
    limit = values.get("max_items")
    if limit is not None and limit < 1:
        raise _refused(422, "invalid_showcase", "max_items", f"max_items: 1 to {MAX_RULE_ITEMS}")
    if limit is not None and limit > MAX_RULE_ITEMS:
        raise _refused(422, "too_many_items", "max_items", f"max_items: 1 to {MAX_RULE_ITEMS}")


def _check_rule(session: Session, showcase: Showcase, raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    rule = rules.parse(raw)
    if showcase.owner_kind == views.MERCHANT and rule.merchant_ids:
        raise _refused(422, "invalid_rule", "rule", "rule.merchant_ids is for a creator's showcase only")
    if showcase.owner_kind == views.CREATOR:
        if not rule.merchant_ids:
            raise _refused(422, "invalid_rule", "rule", "a creator's rule names its merchant_ids")
        known = set(views.rule_merchants(session, showcase, rule))
        unknown = [m for m in rule.merchant_ids if m not in known]
        if unknown:
            raise _refused(422, "merchant_not_found", "rule", f"merchant {unknown[0]} does not exist")
    return rule.as_json()


def _check_products(session: Session, showcase: Showcase, product_ids: Sequence[int]) -> None:
    """Each product exists among the client's merchants, is not deleted, and the owner may show it."""
    if len(set(product_ids)) != len(product_ids):
        raise _refused(422, "invalid_showcase", "product_ids", "each product may appear once")
    rows = {
        row.id: row
        for row in session.execute(
            select(Product.id, Product.merchant_id, Product.status)
            .join(Merchant, Merchant.id == Product.merchant_id)
            .where(Product.id.in_(product_ids), Merchant.platform_client_id == showcase.platform_client_id)
        )
    }
    missing = [pid for pid in product_ids if pid not in rows or rows[pid].status == DELETED]
    if missing:
        raise _refused(
            422,
            "product_not_found",
            "product_ids",
            f"product {missing[0]} does not exist",
            product_ids=missing,
        )
    if showcase.owner_kind == views.MERCHANT:
        foreign = [pid for pid in product_ids if rows[pid].merchant_id != showcase.merchant_id]
        if foreign:
            raise _refused(
                422,
                "product_not_owned",
                "product_ids",
                f"product {foreign[0]} belongs to another merchant",
                product_ids=foreign,
            )
        return
    items = [views.Item(pid, rows[pid].merchant_id, "", None, [], "", 0, None, None) for pid in product_ids]
    allowed = views.promotable(session, showcase.creator_ref or "", items)
    refused = [pid for pid in product_ids if pid not in allowed]
    if refused:
        raise _refused(
            422,
            "not_in_program",
            "product_ids",
            f"no active program lets creator {showcase.creator_ref} promote product {refused[0]}",
            product_ids=refused,
        )


def _owned(session: Session, client_id: int, showcase_id: int, *, lock: bool = False) -> Showcase:
    query = select(Showcase).where(Showcase.id == showcase_id, Showcase.platform_client_id == client_id)
    showcase = session.scalar(query.with_for_update() if lock else query)
    if showcase is None:
        raise _refused(404, "showcase_not_found", "id", f"showcase {showcase_id} not found")
    return showcase


def _owner(session: Session, client_id: int, spec: ShowcaseSpec) -> tuple[str, int | None, str | None]:
    if spec.owner_kind == views.MERCHANT:
        found = spec.merchant_id is not None and session.scalar(
            select(Merchant.id).where(
                Merchant.id == spec.merchant_id, Merchant.platform_client_id == client_id
            )
        )
        if not found:
            raise _refused(
                422, "merchant_not_found", "merchant_id", f"merchant {spec.merchant_id} does not exist"
            )
        if spec.creator_ref is not None:
            raise _refused(
                422, "invalid_showcase", "creator_ref", "a merchant's showcase names no creator_ref"
            )
        return f"merchant:{spec.merchant_id}", spec.merchant_id, None
    if spec.owner_kind != views.CREATOR or not spec.creator_ref or spec.merchant_id is not None:
        raise _refused(
            422,
            "invalid_showcase",
            "owner_kind",
            "owner_kind merchant (with merchant_id) or creator (with creator_ref)",
        )
    return f"creator:{client_id}:{spec.creator_ref}", None, spec.creator_ref


# --- hand-placed items -----------------------------------------------------------------------------------------


def _hand(session: Session, showcase_id: int) -> list[ShowcaseItem]:
    return list(
        session.scalars(
            select(ShowcaseItem)
            .where(ShowcaseItem.showcase_id == showcase_id)
            .order_by(ShowcaseItem.position, ShowcaseItem.id)
        )
    )


def _renumber(items: Sequence[ShowcaseItem]) -> None:
    for position, item in enumerate(items):
        if item.position != position:
            item.position = position


def _place(
    session: Session, showcase: Showcase, product_ids: Sequence[int], position: int | None, pinned: bool
) -> None:
    """Insert `product_ids` at `position` (the end when None) of the hand list."""
    current = _hand(session, showcase.id)
    have = {item.product_id for item in current}
    if len(current) + len(product_ids) > MAX_ITEMS:
        raise _refused(
            422, "too_many_items", "product_ids", f"a showcase holds at most {MAX_ITEMS} hand-placed products"
        )
    again = [pid for pid in product_ids if pid in have]
    if again:
        raise _refused(
            422, "invalid_showcase", "product_ids", f"product {again[0]} is already in the showcase"
        )
    _check_products(session, showcase, product_ids)
    at = len(current) if position is None else max(0, min(position, len(current)))
    new = [
        ShowcaseItem(showcase_id=showcase.id, product_id=pid, position=0, pinned=pinned)
        for pid in product_ids
    ]
    session.add_all(new)
    _renumber([*current[:at], *new, *current[at:]])


def _item(items: Sequence[ShowcaseItem], product_id: int) -> ShowcaseItem:
    for item in items:
        if item.product_id == product_id:
            return item
    raise _refused(404, "item_not_found", "product_id", f"product {product_id} is not placed in the showcase")


# --- bodies ---------------------------------------------------------------------------------------------------------


def showcase_body(session: Session, showcase: Showcase, hand: Sequence[Any] | None = None) -> dict[str, Any]:
    rows = views.hand_rows(session, showcase.id) if hand is None else hand
    return {
        "id": showcase.id,
        "owner_kind": showcase.owner_kind,
        "merchant_id": showcase.merchant_id,
        "creator_ref": showcase.creator_ref,
        "title": showcase.title,
        "handle": showcase.handle,
        "out_of_stock": showcase.out_of_stock,
        "rule": showcase.rule,
        "max_items": showcase.max_items,
        "placed": [
            {"product_id": row.product_id, "position": row.position, "pinned": row.pinned} for row in rows
        ],
        "created_at": iso(showcase.created_at),
        "updated_at": iso(showcase.updated_at),
    }


def _write(rt: runtime.Runtime, work: Any) -> dict[str, Any]:
    """Run `work(session)` (returning the showcase) in a transaction, refresh its view, answer its body."""
    try:
        with rt.db.session() as session:
            showcase = work(session)
            showcase.updated_at = utcnow()
            session.flush()
            events.refresh(session, showcase)
            body = showcase_body(session, showcase)
    except IntegrityError:
        raise _refused(409, "handle_taken", "handle", "the owner has a showcase with this handle") from None
    cache.invalidate(rt.redis, [body["id"]])
    return body


# --- operations -------------------------------------------------------------------------------------------------


def create_showcase(rt: runtime.Runtime, client_id: int, spec: ShowcaseSpec) -> dict[str, Any]:
    _check_fields({"handle": spec.handle, "out_of_stock": spec.out_of_stock, "max_items": spec.max_items})

    def work(session: Session) -> Showcase:
        owner_key, merchant_id, creator_ref = _owner(session, client_id, spec)
        if session.scalar(
            select(Showcase.id).where(Showcase.owner_key == owner_key, Showcase.handle == spec.handle)
        ):
            raise _refused(
                409, "handle_taken", "handle", f"the owner has a showcase with handle {spec.handle}"
            )
        showcase = Showcase(
            platform_client_id=client_id,
            owner_kind=spec.owner_kind,
            owner_key=owner_key,
            merchant_id=merchant_id,
            creator_ref=creator_ref,
            title=spec.title,
            handle=spec.handle,
            out_of_stock=spec.out_of_stock,
            max_items=spec.max_items,
            snapshot=[],
        )
        showcase.rule = _check_rule(session, showcase, spec.rule)
        session.add(showcase)
        session.flush()
        if spec.product_ids:
            _place(session, showcase, list(spec.product_ids), None, spec.pinned)
        return showcase

    body = _write(rt, work)
    logger.info("showcase created", extra={"showcase_id": body["id"], "owner_kind": spec.owner_kind})
    return body


def update_showcase(
    rt: runtime.Runtime, client_id: int, showcase_id: int, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change title, handle, out-of-stock mode, rule (None removes it), max_items; `product_ids` replaces the
    hand list."""
    _check_fields(changes)

    def work(session: Session) -> Showcase:
        showcase = _owned(session, client_id, showcase_id, lock=True)
        for name in ("title", "handle", "out_of_stock", "max_items"):
            if changes.get(name) is not None:
                setattr(showcase, name, changes[name])
        if "rule" in changes:
            showcase.rule = _check_rule(session, showcase, changes["rule"])
        if changes.get("product_ids") is not None:
            session.execute(delete(ShowcaseItem).where(ShowcaseItem.showcase_id == showcase.id))
            _place(session, showcase, list(changes["product_ids"]), None, bool(changes.get("pinned", True)))
        return showcase

    return _write(rt, work)


def delete_showcase(rt: runtime.Runtime, client_id: int, showcase_id: int) -> None:
    """Delete the showcase and, in the same transaction, announce it (`showcase.deleted`)."""
    with rt.db.session() as session:
        showcase = _owned(session, client_id, showcase_id, lock=True)
        events.deleted(session, showcase)
        session.delete(showcase)
    cache.invalidate(rt.redis, [showcase_id])
    logger.info("showcase deleted", extra={"showcase_id": showcase_id})


def add_items(
    rt: runtime.Runtime,
    client_id: int,
    showcase_id: int,
    product_ids: Sequence[int],
    *,
    position: int | None = None,
    pinned: bool = True,
) -> dict[str, Any]:
    def work(session: Session) -> Showcase:
        showcase = _owned(session, client_id, showcase_id, lock=True)
        _place(session, showcase, product_ids, position, pinned)
        return showcase

    return _write(rt, work)


def move_item(
    rt: runtime.Runtime, client_id: int, showcase_id: int, product_id: int, position: int
) -> dict[str, Any]:
    def work(session: Session) -> Showcase:
        showcase = _owned(session, client_id, showcase_id, lock=True)
        items = _hand(session, showcase.id)
        item = _item(items, product_id)
        rest = [other for other in items if other is not item]
        at = max(0, min(position, len(rest)))
        _renumber([*rest[:at], item, *rest[at:]])
        return showcase

    return _write(rt, work)


def remove_item(rt: runtime.Runtime, client_id: int, showcase_id: int, product_id: int) -> dict[str, Any]:
    def work(session: Session) -> Showcase:
        showcase = _owned(session, client_id, showcase_id, lock=True)
        items = _hand(session, showcase.id)
        item = _item(items, product_id)
        session.delete(item)
        _renumber([other for other in items if other is not item])
        return showcase

    return _write(rt, work)


def list_showcases(
    rt: runtime.Runtime,
    client_id: int | None,
    *,
    merchant_id: int | None = None,
    creator_ref: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the client's showcases (every client's with None) by id, and whether more follow."""
    with rt.db.session() as session:
        query = select(Showcase).order_by(Showcase.id)
        if client_id is not None:
            query = query.where(Showcase.platform_client_id == client_id)
        if merchant_id is not None:
            query = query.where(Showcase.merchant_id == merchant_id)
        if creator_ref is not None:
            query = query.where(Showcase.creator_ref == creator_ref)
        if after is not None:
            query = query.where(Showcase.id > after)
        rows = list(session.scalars(query.limit(limit + 1)))
        return [showcase_body(session, s) for s in rows[:limit]], len(rows) > limit


def client_of(rt: runtime.Runtime, *, showcase_id: int | None = None, merchant_id: int | None = None) -> int:
    """The platform client a showcase (or a merchant) belongs to, for operator commands that name only it."""
    with rt.db.session() as session:
        if showcase_id is not None:
            found = session.scalar(select(Showcase.platform_client_id).where(Showcase.id == showcase_id))
            if found is None:
                raise _refused(404, "showcase_not_found", "id", f"showcase {showcase_id} not found")
            return found
        found = session.scalar(select(Merchant.platform_client_id).where(Merchant.id == merchant_id))
        if found is None:
            raise _refused(
                422,
                "merchant_not_found",
                "merchant_id",
                f"merchant {merchant_id} does not exist or has no client",
            )
        return found


# --- reading ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    showcase: dict[str, Any]
    items: list[dict[str, Any]]
    total: int
    next_offset: int | None


def _made_links(session: Session, creator_ref: str, product_ids: Sequence[int]) -> dict[int, str]:
    return {
        link.product_id: link.code
        for link in session.scalars(
            select(AffiliateLink).where(
                AffiliateLink.creator_ref == creator_ref, AffiliateLink.product_id.in_(product_ids)
            )
        )
    }


def _make_links(
    rt: runtime.Runtime, client_id: int, creator_ref: str, product_ids: Sequence[int], base_url: str
) -> dict[int, str]:
    """The creator's links to products that have none yet, made now (`connector.affiliates.links`)."""
    made: dict[int, str] = {}
    for product_id in product_ids:
        try:
            body, _ = links.create_link(
                rt,
                client_id,
                creator_ref=creator_ref,
                product_id=product_id,
                variant_id=None,
                base_url=base_url,
            )
        except RefusedError:
            continue  # no program pays it any more: the item shows without a link
        made[product_id] = body["code"]
    return made


def read_showcase(
    rt: runtime.Runtime, client_id: int, showcase_id: int, *, offset: int, limit: int, base_url: str
) -> Page:
    """The showcase and a page of its visible items from `offset`, with live price, stock and links."""
    with rt.db.session() as session:
        showcase = _owned(session, client_id, showcase_id)
        hand = views.hand_rows(session, showcase.id)
        items = views.visible(session, showcase, hand)
        page = items[offset : offset + limit]
        creator = showcase.creator_ref if showcase.owner_kind == views.CREATOR else None
        codes = _made_links(session, creator, [i.product_id for i in page]) if creator and page else {}
        body = showcase_body(session, showcase, hand)
    if creator:
        missing = [item.product_id for item in page if item.product_id not in codes]
        codes.update(_make_links(rt, client_id, creator, missing, base_url))
    root = base_url.rstrip("/")
    made = {pid: {"code": code, "url": f"{root}/l/{code}"} for pid, code in codes.items()}
    bodies = [views.item_body(item, offset + i, made.get(item.product_id)) for i, item in enumerate(page)]
    more = offset + limit < len(items)
    return Page(body, bodies, len(items), offset + limit if more else None)
