"""Reading a Walmart seller's catalog: every item page by page, consecutive items of one variant group as one
product, with stock read in batches."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from adapters.walmart import const, mapper
from adapters.walmart.inventory import WalmartInventory
from connector.domain.catalog import CollectionRef, Product
from connector.domain.ports import CatalogReport

logger = logging.getLogger(__name__)
_STOCK_BATCH: Final = 20
"""Items whose stock is read together during a catalog pass."""


Heading = tuple[str, tuple[CollectionRef, ...]]
"""The title and collections of a product."""


def _group_heading(headings: dict[str, Heading], group: Sequence[mapper.ItemParts]) -> Heading:
    """The title and collections of a variant group's product: those its first part had in this pass (a
    single item's own), so every part of the group hashes alike."""
    primary = next((part for part in group if part.is_primary), group[0])
    if primary.product_id == primary.variant.external_id:
        return primary.title, primary.collections
    return headings.setdefault(primary.product_id, (primary.title, primary.collections))


class WalmartCatalog(WalmartInventory):
    """Catalog reads of `WalmartAdapter` (mixed into it; stock comes from `WalmartInventory`)."""

    def iter_catalog(self, since: datetime | None = None) -> Iterator[Product]:
        """Stream every item (`GET /v3/items` from `nextCursor=*` until the cursor is empty; a short page is
        not the end), consecutive items of one variant group as one product. `since` is not used: Walmart
        has no changed-since filter on items."""
        self._report = CatalogReport()
        return self._catalog(self._report)

    def iter_items(self) -> Generator[Mapping[str, Any], None, None]:
        """The raw items, page by page."""
        cursor: str | None = "*"
        while cursor is not None:
            page = self.client.request(
                "GET",
                const.ITEMS_PATH,
                params={"nextCursor": cursor, "limit": const.ITEMS_PAGE_LIMIT},
            )
            yield from mapper.items_of(page)
            cursor = mapper.next_cursor(page)

    def _catalog(self, report: CatalogReport) -> Generator[Product, None, None]:
        if self.config["catalog_stock"] and self.config["inventory_source"] == "ship_nodes":
            self._stock = {level.variant_external_id: level.available for level in self.iter_stock()}
        else:
            self._stock = None
        headings: dict[str, Heading] = {}  # a group's, fixed by its first part
        seen: set[str] = set()
        group: list[mapper.ItemParts] = []
        pending: list[tuple[list[mapper.ItemParts], Heading]] = []
        products = 0
        for position, item in enumerate(self.iter_items(), start=1):
            try:
                parts = mapper.parse_item(item, self._currency)
            except ValueError as exc:
                report.skip(position, str(exc), mapper.text(item.get("sku")))
                continue
            if parts.variant.external_id in seen:
                report.skip(position, f"duplicate sku {parts.variant.external_id!r}")
                continue
            seen.add(parts.variant.external_id)
            if group and (
                group[0].product_id != parts.product_id or len(group) >= const.MAX_VARIANTS_PER_PRODUCT
            ):
                pending.append((group, _group_heading(headings, group)))
                group = []
            group.append(parts)
            if sum(len(g) for g, _ in pending) >= _STOCK_BATCH:
                for product in self._with_stock(pending):
                    products += 1
                    yield product
                pending = []
        if group:
            pending.append((group, _group_heading(headings, group)))
        for product in self._with_stock(pending):
            products += 1
            yield product
        log = logger.warning if report.skipped else logger.info
        log(
            "walmart catalog read",
            extra={"items": len(seen), "products": products, "skipped": report.skipped},
        )

    def _with_stock(self, groups: list[tuple[list[mapper.ItemParts], Heading]]) -> list[Product]:
        built = [mapper.build_product(parts, *heading) for parts, heading in groups]
        if not self.config["catalog_stock"] or not built:
            return built
        if self._stock is not None:  # read up front from the multi-node listing
            levels: Mapping[str, int | None] = self._stock
        else:
            levels = {
                level.variant_external_id: level.available
                for level in self.get_inventory([v.external_id for p in built for v in p.variants])
            }
        return [
            replace(
                product,
                variants=tuple(
                    replace(v, quantity=levels.get(v.external_id, v.quantity)) for v in product.variants
                ),
            )
            for product in built
        ]
