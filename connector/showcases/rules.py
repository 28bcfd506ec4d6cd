"""Showcase rules: which products of which merchants a rule showcase shows, and in what order.

A rule is a JSON object; every key is optional:

- `vendor`: the product's vendor, exactly;
- `min_price_minor`, `max_price_minor`: the product's current price (its cheapest live variant), inclusive,
  in the currency's minor units;
- `in_stock_only`: only products with sellable stock (applied when the showcase is read, with live stock);
- `tag`: only products with this tag, however its case is spelled (`Summer` matches `summer`);
- `collection`: only products in the collection with this handle (or this store id) in the store;
- `sort`: `newest` (default: first seen by Storelink, newest first), `best_selling` (units sold through
  Storelink's own orders, most first), `price_asc` or `price_desc`;
- `merchant_ids`: a creator's showcase only, and required there: the merchants whose products it draws from
  (the creator sees only the products a program lets them promote).

Tags and collections are the store's, as the catalog sync last read them, so a rule follows them: a product
tagged or put in the collection in the store joins the showcase after the next sync, one untagged or taken
out leaves it. A tag or collection no product has yet is not an error: the rule matches nothing until one
does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from connector.catalog import groups
from connector.domain.catalog import MAX_COLLECTION_CHARS, MAX_TAG_CHARS, tag_key
from connector.domain.errors import RefusedError
from connector.infra.models import Order, OrderLine, Product, Variant

logger = logging.getLogger(__name__)

ACTIVE: Final = "active"
SORTS: Final = ("newest", "best_selling", "price_asc", "price_desc")
MAX_MERCHANTS: Final = 50
MAX_PRICE: Final = 10**15
NOT_SOLD: Final = ("rejected", "cancelled")
"""Order states whose lines do not count as sales for `best_selling`."""
_KEYS: Final = {
    "vendor",
    "min_price_minor",
    "max_price_minor",
    "in_stock_only",
    "sort",
    "merchant_ids",
    "tag",
    "collection",
}


@dataclass(frozen=True, slots=True)
class Rule:
    vendor: str | None = None
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    in_stock_only: bool = False
    sort: str = "newest"
    merchant_ids: tuple[int, ...] = ()
    tag: str | None = None
    collection: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"sort": self.sort, "in_stock_only": self.in_stock_only}
        for name in ("vendor", "min_price_minor", "max_price_minor", "tag", "collection"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        if self.merchant_ids:
            body["merchant_ids"] = list(self.merchant_ids)
        return body


def _bad(message: str) -> RefusedError:
    return RefusedError(422, "invalid_rule", message, errors=[{"field": "rule", "message": message}])


def _price(raw: Mapping[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRICE:
        raise _bad(f"rule.{name} must be a whole number of minor units from 0 to {MAX_PRICE}")
    return value


def _merchant_ids(raw: Mapping[str, Any]) -> tuple[int, ...]:
    value = raw.get("merchant_ids", [])
    if (
        not isinstance(value, list)
        or len(value) > MAX_MERCHANTS
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise _bad(f"rule.merchant_ids must be a list of at most {MAX_MERCHANTS} merchant ids")
    return tuple(dict.fromkeys(value))


def _control(value: str) -> bool:
    """Whether `value` holds a control character (no store spells a name with one)."""
    return any(ch < " " or ch == "\x7f" for ch in value)


def _name(raw: Mapping[str, Any], name: str, longest: int) -> str | None:
    """A tag or collection named by a rule, trimmed: text of 1 to `longest` characters, no control ones."""
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > longest or _control(value):
        raise _bad(f"rule.{name} must be text of 1 to {longest} characters, without control characters")
    if name == "tag" and not tag_key(value):
        raise _bad("rule.tag must name a tag")
    return value.strip()


def parse(raw: Any) -> Rule:
    """The rule `raw` describes; a 422 `invalid_rule` naming what is wrong otherwise."""
    if not isinstance(raw, dict):
        raise _bad("rule must be a JSON object")
    unknown = sorted(raw.keys() - _KEYS)
    if unknown:
        raise _bad(f"rule.{unknown[0]} is not a rule field (known: {', '.join(sorted(_KEYS))})")
    vendor = raw.get("vendor")
    if vendor is not None and (not isinstance(vendor, str) or not 0 < len(vendor) <= 255 or _control(vendor)):
        raise _bad("rule.vendor must be text of 1 to 255 characters, without control characters")
    low, high = _price(raw, "min_price_minor"), _price(raw, "max_price_minor")
    if low is not None and high is not None and low > high:
        raise _bad("rule.min_price_minor is above rule.max_price_minor")
    in_stock = raw.get("in_stock_only", False)
    if not isinstance(in_stock, bool):
        raise _bad("rule.in_stock_only must be true or false")
    sort = raw.get("sort", "newest")
    if sort not in SORTS:
        raise _bad(f"rule.sort must be one of {', '.join(SORTS)}")
    return Rule(
        vendor,
        low,
        high,
        in_stock,
        sort,
        _merchant_ids(raw),
        _name(raw, "tag", MAX_TAG_CHARS),
        _name(raw, "collection", MAX_COLLECTION_CHARS),
    )


def _query(rule: Rule, merchant_ids: Sequence[int]) -> Select[Any]:
    price = (
        select(Variant.product_id, func.min(Variant.price_minor).label("price"))
        .where(Variant.merchant_id.in_(merchant_ids), Variant.status == ACTIVE)
        .group_by(Variant.product_id)
        .subquery()
    )
    query = (
        select(Product.id)
        .join(price, price.c.product_id == Product.id)
        .where(Product.merchant_id.in_(merchant_ids), Product.status == ACTIVE)
    )
    if rule.vendor is not None:
        query = query.where(Product.vendor == rule.vendor)
    if rule.tag is not None:
        query = query.where(Product.id.in_(groups.tag_filter(merchant_ids, rule.tag)))
    if rule.collection is not None:
        query = query.where(Product.id.in_(groups.collection_filter(merchant_ids, handle=rule.collection)))
    if rule.min_price_minor is not None:
        query = query.where(price.c.price >= rule.min_price_minor)
    if rule.max_price_minor is not None:
        query = query.where(price.c.price <= rule.max_price_minor)
    if rule.sort == "best_selling":
        sold = (
            select(
                Variant.product_id, func.sum(OrderLine.quantity - OrderLine.refunded_quantity).label("sold")
            )
            .join(OrderLine, OrderLine.variant_id == Variant.id)
            .join(Order, Order.id == OrderLine.order_id)
            .where(Variant.merchant_id.in_(merchant_ids), Order.status.not_in(NOT_SOLD))
            .group_by(Variant.product_id)
            .subquery()
        )
        query = query.outerjoin(sold, sold.c.product_id == Product.id).order_by(
            func.coalesce(sold.c.sold, 0).desc(), Product.id.desc()
        )
    elif rule.sort == "price_asc":
        query = query.order_by(price.c.price, Product.id)
    elif rule.sort == "price_desc":
        query = query.order_by(price.c.price.desc(), Product.id.desc())
    else:
        query = query.order_by(Product.created_at.desc(), Product.id.desc())
    return query


def matches(
    session: Session, rule: Rule, merchant_ids: Sequence[int], *, offset: int, limit: int
) -> list[int]:
    """A page of the product ids the rule selects among `merchant_ids`' live products, in the rule's order
    (stock is the reader's to check: `in_stock_only` is applied with live stock)."""
    if not merchant_ids:
        return []
    return list(session.scalars(_query(rule, merchant_ids).offset(offset).limit(limit)))
