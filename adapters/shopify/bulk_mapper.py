"""Products assembled from a bulk operation's JSONL result (`BulkAssembler`): child lines (variants, media,
collections) come after their product, and a product too large to hold is yielded in parts. Pure: nothing here does I/O."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from adapters.shopify import const
from adapters.shopify.mapper import (
    collection,
    gid_type,
    is_product_gid,
    is_variant_gid,
    media_url,
    product_header,
    variant,
)
from connector.domain.catalog import CollectionRef, Product, Variant, clean_collections

_NOTHING: Iterator[Product] = iter(())
"""What a line that completes no product yields (an exhausted iterator, shared)."""


@dataclass(slots=True)
class _Pending:
    variants: list[Variant] = field(default_factory=list)


class BulkAssembler:
    """Rebuilds products from the JSONL of a bulk `BULK_CATALOG` export, line by line.

    The format, as Shopify documents it: one JSON object per line; an object of a nested connection is a
    line of its own naming its parent's id in `__parentId`; a line's type is its `__typename` when the query
    asks for it, else the type in its GID (`gid://shopify/<Type>/<id>`, sometimes with a query string). Since
    API 2026-01 children are not grouped under their parent: a variant (or media) line may come before its
    product or after lines of other products. Product and ProductVariant lines are read; a MediaImage (any
    media line with an image URL) under a product gives an image, a Collection line under a product one of
    its collections (the first `MAX_COLLECTIONS`); lines of any other type (metafields,
    videos, whatever a later query adds) are counted in `ignored` by type, never errors. Every product a line
    refers to is accounted for: read whole, yielded without variants when none of its variant lines could be
    used, or, when its own line is missing or unusable, named in `skipped_refs` (with the variant lines that
    came for it) so a full sync keeps it as it is.

    The assembler keeps, for every product seen, its header (the product without variants: a few short
    strings), and buffers variants by product id. A product is yielded when the file ends, so it comes
    whole; but when more than `max_buffered` variants are waiting, the products waiting longest are yielded
    at once with the variants read so far, and a variant of theirs that comes later is yielded at the end as
    another part of the same product (the catalog sync merges parts). Memory is therefore bounded by
    `max_buffered` variants plus one header per product, whatever the catalog size. Images that come after
    their product was yielded are dropped, so under that pressure a product may be seen with fewer images
    than it has. Collections are kept by product to the end and every part carries those read so far, so a
    part yielded early may lack collections a later part has (the later part wins).
    """

    def __init__(self, currency: str, max_buffered: int = const.MAX_BUFFERED_VARIANTS) -> None:
        self.currency = currency
        self.max_buffered = max(1, max_buffered)
        self.errors: list[tuple[int, str]] = []
        self.skipped = 0
        """Lines refused, including those beyond the recorded `errors`."""
        self.skipped_refs: set[str] = set()
        self.ignored: dict[str, int] = {}
        """Lines of types not modelled here, by type."""
        self._headers: dict[str, Product] = {}
        self._media: dict[str, list[str]] = {}
        self._collections: dict[str, list[CollectionRef]] = {}
        self._pending: dict[str, list[tuple[int, dict[str, Any]]] | _Pending] = {}
        self._buffered = 0
        self._emitted: set[str] = set()
        self._bad_products: set[str] = set()
        self._referred: set[str] = set()
        """Products named by a line other than their own (those still without a header at the end are
        reported in `skipped_refs`)."""
        self.products = 0

    def _skip(self, position: int, reason: str, *refs: str | None) -> None:
        self.skipped += 1
        self.skipped_refs.update(ref for ref in refs if ref)
        if len(self.errors) < 1000:
            self.errors.append((position, reason))

    def add_line(self, position: int, line: bytes | str) -> Iterator[Product]:
        """Read one JSONL line (position = line number); yields products when the buffer must be relieved."""
        try:
            record = orjson.loads(line)  # money comes as Decimal text ("12.99"), never as a JSON number
        except ValueError as exc:
            self._skip(position, f"line {position} is not JSON: {exc}")
            return iter(())
        if not isinstance(record, dict):
            self._skip(position, f"line {position} is not a JSON object")
            return iter(())
        return self.add(position, record)

    def add(self, position: int, record: dict[str, Any]) -> Iterator[Product]:
        get = record.get
        record_id, parent = get("id"), get("__parentId")
        if (  # the usual line, a variant under its product: read without working out its type
            type(record_id) is str
            and type(parent) is str
            and "__typename" not in record
            and is_variant_gid(record_id)
            and is_product_gid(parent)
        ):
            self._add_variant(position, parent, record)
            return self._relieve() if self._buffered > self.max_buffered else _NOTHING
        return self._add_any(position, record)

    def _add_any(self, position: int, record: dict[str, Any]) -> Iterator[Product]:
        record_id = record.get("id")
        record_id = record_id if isinstance(record_id, str) and record_id else None
        typename = record.get("__typename")
        kind = typename if isinstance(typename, str) and typename else None
        kind = kind or (gid_type(record_id) if record_id else None)
        parent = record.get("__parentId")
        if parent is not None and not isinstance(parent, str):
            self._skip(position, f"line {position}: __parentId is not a GID")
            return iter(())
        if kind is None:
            if parent is None:
                self._skip(position, f"line {position} has neither an id nor a __typename")
                return iter(())
            kind = "unknown"
        if kind == "Product" and parent is None:
            return self._add_product(position, record_id, record)
        if kind == "ProductVariant" and parent is not None and is_product_gid(parent):
            if record_id is None:
                self._skip(position, f"line {position}: a variant without an id", parent)
                return iter(())
            self._add_variant(position, parent, record)
            return self._relieve()
        if parent is not None and is_product_gid(parent):
            self._referred.add(parent)
            found = collection(record) if kind == "Collection" else None
            if found is not None:
                held = self._collections.setdefault(parent, [])
                if len(held) < const.MAX_COLLECTIONS:
                    held.append(found)
                return iter(())
            url = media_url(record)
            if url:  # an image of the product (dropped when the product was already yielded)
                if parent not in self._emitted:
                    media = self._media.setdefault(parent, [])
                    if len(media) < const.MAX_MEDIA:
                        media.append(url)
                return iter(())
        self.ignored[kind] = self.ignored.get(kind, 0) + 1
        return iter(())

    def _add_product(self, position: int, record_id: str | None, record: dict[str, Any]) -> Iterator[Product]:
        if record_id is None:
            self._skip(position, f"line {position}: a product without an id")
            return iter(())
        try:
            self._headers[record_id] = product_header(record)
        except ValueError as exc:
            self._skip(position, str(exc), record_id)
            self._bad_products.add(record_id)
            self._headers.pop(record_id, None)
            waiting = self._pending.pop(record_id, None)
            for early_position, early in waiting if isinstance(waiting, list) else []:
                self._buffered -= 1
                self._skip(
                    early_position,
                    f"variant {early.get('id')}: its product is unusable",
                    str(early.get("id")),
                )
            return iter(())
        waiting = self._pending.get(record_id)
        if isinstance(waiting, list):  # variants that came before their product
            self._pending[record_id] = _Pending()
            for early_position, early in waiting:
                self._buffered -= 1
                self._add_variant(early_position, record_id, early)
        return self._relieve()

    def _add_variant(self, position: int, parent: str, record: dict[str, Any]) -> None:
        header = self._headers.get(parent)
        pending = self._pending.get(parent)
        if header is None:
            if parent in self._bad_products:
                self._skip(
                    position,
                    f"variant {record.get('id')}: its product is unusable",
                    str(record["id"]),
                    parent,
                )
                return
            orphans = pending if isinstance(pending, list) else []
            orphans.append((position, record))
            self._pending[parent] = orphans
            self._buffered += 1
            return
        try:
            found = variant(record, self.currency, header.status, header.title)
        except (ValueError, ArithmeticError) as exc:
            self._skip(position, f"variant {record.get('id')}: {exc}", str(record.get("id")), parent)
            return
        if not isinstance(pending, _Pending):
            pending = self._pending[parent] = _Pending()
        pending.variants.append(found)
        self._buffered += 1

    def _part(self, product_id: str, pending: _Pending) -> Product:
        header = self._headers[product_id]
        if product_id not in self._emitted:
            media = self._media.pop(product_id, None)
            if media:
                header = self._headers[product_id] = replace(header, media=tuple(media))
        self._emitted.add(product_id)
        self.products += 1
        held = self._collections.get(product_id)
        groups = clean_collections(held) if held else ()
        return replace(header, variants=tuple(pending.variants), collections=groups)

    def _relieve(self) -> Iterator[Product]:
        if self._buffered <= self.max_buffered:
            return iter(())
        parts: list[Product] = []
        for product_id in list(self._pending):
            if self._buffered <= self.max_buffered // 2:
                break
            pending = self._pending[product_id]
            if isinstance(pending, _Pending) and pending.variants:
                del self._pending[product_id]
                self._buffered -= len(pending.variants)
                parts.append(self._part(product_id, pending))
        return iter(parts)

    def finish(self) -> Iterator[Product]:
        """The products still waiting, in the order they were first seen, then those no usable variant line
        came for (yielded without variants); orphan variants are reported with their product."""
        for product_id, pending in list(self._pending.items()):
            del self._pending[product_id]
            if isinstance(pending, _Pending):
                self._buffered -= len(pending.variants)
                if pending.variants:
                    yield self._part(product_id, pending)
                continue
            for position, record in pending:
                self._buffered -= 1
                self._skip(
                    position,
                    f"variant {record.get('id')}: product {product_id} is not in the export",
                    str(record.get("id")),
                    product_id,
                )
        for product_id in list(self._headers):
            if product_id not in self._emitted:
                yield self._part(product_id, _Pending())
        self.skipped_refs.update(self._referred - self._headers.keys())
        self._media.clear()
        self._collections.clear()
