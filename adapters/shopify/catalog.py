"""Reading a shop's catalog: a bulk export (started, awaited and streamed from its JSONL result) or pages of
products updated since a time, with stock at the configured location."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from adapters.shopify import bulk_mapper, const, mapper, queries
from adapters.shopify.inventory import ShopifyInventory
from connector.domain.catalog import Product
from connector.domain.errors import AuthError, PermanentError, RetryableError
from connector.domain.ports import CatalogReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BulkStatus:
    """A bulk operation as last polled."""

    id: str
    status: str
    error_code: str | None = None
    object_count: int = 0
    url: str | None = None
    partial_data_url: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")


class ShopifyCatalog(ShopifyInventory):
    """Catalog reads of `ShopifyAdapter` (mixed into it; the stock of a pass comes from `ShopifyInventory`)."""

    def iter_catalog(self, since: datetime | None = None) -> Iterator[Product]:
        """Stream the catalog: a bulk export when `since` is None (and bulk is on), else pages of products
        updated since `since` less an overlap. Products may come in parts (see bulk_mapper.BulkAssembler)."""
        self._report = CatalogReport()
        return self._catalog(since, self._report)

    def _catalog(self, since: datetime | None, report: CatalogReport) -> Generator[Product, None, None]:
        if since is None and self.config["bulk"]:
            try:
                operation = self.start_bulk_catalog()
            except (AuthError, PermanentError) as exc:
                if exc.code not in ("access_denied",) and exc.details.get("store_code") != "ACCESS_DENIED":
                    raise
                logger.warning("no bulk access, reading pages instead", extra={"shop": self._shop})
            else:
                url = self.wait_for_bulk(operation)
                if url is not None:
                    yield from self._stocked(self._read_bulk(url, report))
                return
        yield from self._stocked(self._pages(since, report))

    def start_bulk_catalog(self) -> str:
        """Start the bulk export of the catalog; returns the BulkOperation GID."""
        payload = self.client.mutate(
            queries.BULK_RUN_QUERY, {"query": queries.BULK_CATALOG}, "bulkOperationRunQuery"
        )
        operation = payload.get("bulkOperation")
        if not isinstance(operation, dict) or not isinstance(operation.get("id"), str):
            raise PermanentError("bulkOperationRunQuery returned no operation", code="graphql_no_data")
        logger.info("bulk catalog export started", extra={"shop": self._shop, "operation": operation["id"]})
        return str(operation["id"])

    def bulk_status(self, operation_id: str) -> BulkStatus:
        node = self.client.execute(queries.BULK_STATUS, {"id": operation_id}).get("node")
        if not isinstance(node, dict) or not node.get("status"):
            raise PermanentError(f"bulk operation {operation_id} not found", code="not_found")
        count = node.get("objectCount")
        return BulkStatus(
            id=operation_id,
            status=str(node["status"]),
            error_code=node.get("errorCode"),
            object_count=int(count) if isinstance(count, int | str) and str(count).isdigit() else 0,
            url=node.get("url"),
            partial_data_url=node.get("partialDataUrl"),
        )

    def wait_for_bulk(self, operation_id: str, timeout: float = const.BULK_TIMEOUT_SECONDS) -> str | None:
        """Poll until the operation ends; its result URL (None for an empty result).

        Between polls it waits on `bulk_signal` when set, so the `bulk_operations/finish` webhook ends the
        wait at once; the polls (1 s doubling to 15 s) are the fallback when a delivery is late or lost."""
        delay = const.BULK_POLL_INITIAL
        waited = 0.0
        while True:
            status = self.bulk_status(operation_id)
            if status.status == "COMPLETED":
                return status.url
            if status.done:
                error = (
                    f"bulk operation {operation_id} ended {status.status} ({status.error_code or 'no code'})"
                )
                if status.error_code == "ACCESS_DENIED":
                    raise PermanentError(error, code="bulk_access_denied")
                raise RetryableError(error, code="bulk_failed")
            if waited >= timeout:
                raise RetryableError(
                    f"bulk operation {operation_id} still {status.status}", code="bulk_timeout"
                )
            waited += delay  # at most: a signal ends the wait sooner
            if self.bulk_signal is None:
                self.sleep(delay)
            elif self.bulk_signal(operation_id, delay):
                logger.info(
                    "bulk operation end announced", extra={"shop": self._shop, "operation": operation_id}
                )
                continue  # poll now, keeping the delay: the word may precede the status by a moment
            delay = min(delay * 2, const.BULK_POLL_MAX)

    def read_bulk_catalog(self, url: str) -> Iterator[Product]:
        """Stream the products of a finished bulk export from its JSONL result URL."""
        self._report = CatalogReport()
        return self._stocked(self._read_bulk(url, self._report))

    def _read_bulk(self, url: str, report: CatalogReport) -> Generator[Product, None, None]:
        assembler = bulk_mapper.BulkAssembler(self.currency())
        position = 0
        for position, line in enumerate(self.client.stream_lines(url), start=1):
            yield from assembler.add_line(position, line)
        yield from assembler.finish()
        for where, reason in assembler.errors:
            report.errors.append((where, reason))
        report.skipped += assembler.skipped
        report.skipped_refs |= assembler.skipped_refs
        logger.info(
            "bulk catalog read",
            extra={
                "shop": self._shop,
                "lines": position,
                "parts": assembler.products,
                "skipped": report.skipped,
                "ignored": dict(sorted(assembler.ignored.items())),
            },
        )

    def _pages(self, since: datetime | None, report: CatalogReport) -> Generator[Product, None, None]:
        currency = self.currency()
        search = None
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            start = since.astimezone(UTC) - timedelta(seconds=const.INCREMENTAL_OVERLAP_SECONDS)
            search = f"updated_at:>'{start.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        after: str | None = None
        position = 0
        while True:
            variables = {"first": const.PRODUCTS_PER_PAGE, "after": after, "query": search}
            connection = self.client.execute(queries.CATALOG_PAGE, variables).get("products")
            for node in mapper.nodes(connection):
                position += 1
                if not isinstance(node, dict):
                    continue
                try:
                    page = mapper.page_product(node, currency)
                except ValueError as exc:
                    # Named with its variants: a full sync keeps an unreadable product as it is.
                    refs = [
                        node.get("id"),
                        *(v.get("id") for v in mapper.nodes(node.get("variants")) if isinstance(v, dict)),
                    ]
                    report.skip(position, str(exc))
                    report.skipped_refs.update(ref for ref in refs if isinstance(ref, str) and ref)
                    continue
                for ref, reason in page.errors:
                    report.skip(position, reason, ref or None)
                product = page.product
                if page.more_variants_after:
                    product = self._rest_of_variants(
                        product, page.more_variants_after, currency, position, report
                    )
                yield product
            after = mapper.next_cursor(connection)
            if after is None:
                return

    def _rest_of_variants(
        self, product: Product, after: str | None, currency: str, position: int, report: CatalogReport
    ) -> Product:
        variants = list(product.variants)
        while after is not None:
            found = self.client.execute(
                queries.PRODUCT_VARIANTS_PAGE, {"id": product.external_id, "after": after}
            )
            node = found.get("product")
            connection = node.get("variants") if isinstance(node, dict) else None
            more, errors = mapper.variants_of(product, connection, currency)
            variants += more
            for ref, reason in errors:
                report.skip(position, reason, ref or None)
            after = mapper.next_cursor(connection)
        return replace(product, variants=tuple(variants))

    def _stocked(self, products: Iterable[Product]) -> Generator[Product, None, None]:
        """Products with stock at the configured location (when there is one), read in batches."""
        if self._location is None:
            yield from products
            return
        batch: list[Product] = []
        size = 0
        for product in products:
            batch.append(product)
            size += len(product.variants)
            if size >= const.INVENTORY_BATCH_AT_LOCATION:
                yield from self._with_levels(batch)
                batch, size = [], 0
        if batch:
            yield from self._with_levels(batch)

    def _with_levels(self, products: list[Product]) -> list[Product]:
        refs = [v.external_id for p in products for v in p.variants]
        levels = {level.variant_external_id: level.available for level in self.get_inventory(refs)}
        return [
            replace(
                product,
                variants=tuple(
                    replace(v, quantity=levels.get(v.external_id, v.quantity)) for v in product.variants
                ),
            )
            for product in products
        ]
