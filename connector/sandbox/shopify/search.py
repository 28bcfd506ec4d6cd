"""Shopify's search syntax (`key:value`, comparisons, quoted values) as predicates over records and webhook
bodies, with the filterable fields of each connection."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final


def to_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


_FILTER = re.compile(r"""(?P<key>[\w.]+):(?P<op>>=|<=|>|<)?(?P<value>'[^']*'|"[^"]*"|\S+)|(?P<word>\S+)""")


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def search(query: str | None, fields: dict[str, Callable[[Any], Any]]) -> Callable[[Any], bool]:
    """A predicate for Shopify's search syntax (`key:value`, `key:>value`, quoted values, AND between terms;
    unknown keys are ignored, as Shopify ignores them with a warning)."""
    if not query:
        return lambda _: True
    terms: list[tuple[Callable[[Any], Any], str, str]] = []
    words: list[str] = []
    for match in _FILTER.finditer(query):
        if match["word"]:
            if match["word"].upper() not in ("AND",):
                words.append(match["word"].strip("'\"").lower())
            continue
        getter = fields.get(match["key"])
        if getter is not None:
            terms.append((getter, match["op"] or ":", match["value"].strip("'\"")))

    def compare(actual: Any, op: str, wanted: str) -> bool:
        if isinstance(actual, list):
            return any(compare(item, op, wanted) for item in actual)
        if actual is None:
            return False
        if isinstance(actual, str) and op != ":":
            actual = to_decimal(actual) if to_decimal(actual) is not None else (parse_time(actual) or actual)
        if isinstance(actual, datetime):
            moment = parse_time(wanted)
            if moment is None:
                return False
            return {
                ">": actual > moment,
                ">=": actual >= moment,
                "<": actual < moment,
                "<=": actual <= moment,
                ":": actual == moment,
            }[op]
        if isinstance(actual, int | Decimal) and not isinstance(actual, bool):
            number = to_decimal(wanted)
            if number is None:
                return False
            return {
                ">": actual > number,
                ">=": actual >= number,
                "<": actual < number,
                "<=": actual <= number,
                ":": actual == number,
            }[op]
        text = str(actual).lower()
        if wanted.endswith("*"):
            return text.startswith(wanted[:-1].lower())
        return text == wanted.lower()

    def matches(item: Any) -> bool:
        if not all(compare(getter(item), op, wanted) for getter, op, wanted in terms):
            return False
        title = str(getattr(item, "title", getattr(item, "name", ""))).lower()
        return all(word in title for word in words)

    return matches


PRODUCT_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda p: p.updated_at,
    "created_at": lambda p: p.created_at,
    "title": lambda p: p.title,
    "handle": lambda p: p.handle,
    "status": lambda p: p.status,
    "vendor": lambda p: p.vendor,
    "product_type": lambda p: p.product_type,
    "tag": lambda p: p.tags,
    "sku": lambda p: [v.sku for v in p.variants],
    "barcode": lambda p: [v.barcode for v in p.variants],
    "id": lambda p: p.legacy_resource_id,
}
VARIANT_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda v: v.updated_at,
    "created_at": lambda v: v.created_at,
    "sku": lambda v: v.sku,
    "barcode": lambda v: v.barcode,
    "product_id": lambda v: v.product.legacy_resource_id,
    "id": lambda v: v.legacy_resource_id,
    "title": lambda v: v.title,
}
ITEM_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda i: i.updated_at,
    "created_at": lambda i: i.created_at,
    "sku": lambda i: i.sku,
    "id": lambda i: i.legacy_resource_id,
}
ORDER_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "updated_at": lambda o: o.updated_at,
    "created_at": lambda o: o.created_at,
    "processed_at": lambda o: o.processed_at,
    "source_identifier": lambda o: o.source_identifier,
    "source_name": lambda o: o.source_name,
    "tag": lambda o: o.tags,
    "name": lambda o: [o.name, str(o.number)],
    "email": lambda o: o.email,
    "id": lambda o: o.legacy_resource_id,
    "financial_status": lambda o: o.financial_status,
    "fulfillment_status": lambda o: o.fulfillment_status,
    "status": lambda o: "cancelled" if o.cancelled_at else ("closed" if o.closed_at else "open"),
    "test": lambda o: str(o.test).lower(),
}


def dig(body: Any, path: str) -> Any:
    """The values at a dotted path of a webhook body (lists are walked), for subscription filters."""
    values = [body]
    for part in path.split("."):
        found: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            found.extend(item[part] for item in items if isinstance(item, dict) and part in item)
        values = found
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


class PayloadFields(dict[str, Callable[[Any], Any]]):
    """Search fields for any dotted key of a webhook body."""

    def get(self, key: str, default: Any = None) -> Callable[[Any], Any]:
        return lambda body: dig(body, key)


LOCATION_FILTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "name": lambda loc: loc.name,
    "id": lambda loc: loc.legacy_resource_id,
}
