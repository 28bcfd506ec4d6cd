"""A Walmart seller's stock: levels read per SKU or from the multi-node listing, written per SKU or as a bulk
inventory feed."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

from adapters.walmart import const, mapper
from adapters.walmart.base import POLL_INITIAL, WalmartBase
from adapters.walmart.client import path_segment
from adapters.walmart.mapper import FeedStatus
from connector.domain.catalog import InventoryLevel
from connector.domain.errors import NotFoundError, PermanentError, RetryableError, ValidationError

logger = logging.getLogger(__name__)


class WalmartInventory(WalmartBase):
    """Inventory reads and writes of `WalmartAdapter` (mixed into it)."""

    def iter_stock(self) -> Iterator[InventoryLevel]:
        """Every SKU's stock from the multi-node listing (`GET /v3/inventories`, 50 a page, followed by its
        `nextCursor`): a catalog pass reads stock in a page per 50 SKUs instead of a call per SKU."""
        when = datetime.fromtimestamp(self._wall(), UTC)
        cursor: str | None = None
        while True:
            params: dict[str, object] = {"limit": const.INVENTORIES_PAGE_LIMIT}
            if cursor:
                params["nextCursor"] = cursor
            page = self.client.request("GET", const.INVENTORIES_PATH, params=params)
            elements = page.get("elements") if isinstance(page, Mapping) else None
            found = elements.get("inventories") if isinstance(elements, Mapping) else None
            for entry in found if isinstance(found, list) else []:
                sku = mapper.text(entry.get("sku")) if isinstance(entry, Mapping) else None
                if not sku:
                    continue
                try:
                    level = mapper.level_from_nodes(entry, sku, self._location, when)
                except ValueError as exc:
                    logger.warning("unreadable walmart inventory", extra={"sku": sku, "error": str(exc)})
                    continue
                if level is not None:
                    yield level
            meta = page.get("meta") if isinstance(page, Mapping) else None
            cursor = mapper.text(meta.get("nextCursor")) if isinstance(meta, Mapping) else None
            if not cursor:
                return

    @property
    def location(self) -> str:
        """The location ref of the levels this adapter reads and writes."""
        return self._location or const.DEFAULT_LOCATION

    def get_inventory(self, variant_refs: Sequence[str]) -> list[InventoryLevel]:
        """Stock of each SKU, in the order asked; SKUs Walmart does not know are left out."""
        found: list[InventoryLevel] = []
        for sku in dict.fromkeys(variant_refs):
            if not sku:
                continue
            try:
                level = self._level(sku)
            except NotFoundError:
                continue
            except ValueError as exc:
                logger.warning("unreadable walmart inventory", extra={"sku": sku, "error": str(exc)})
                continue
            if level is not None:
                found.append(level)
        return found

    def _level(self, sku: str) -> InventoryLevel | None:
        when = datetime.fromtimestamp(self._wall(), UTC)
        if self.config["inventory_source"] == "ship_nodes":
            body = self.client.request(
                "GET",
                f"{const.INVENTORIES_PATH}/{path_segment(sku)}",
                params={"shipNode": self._location},
                endpoint=f"GET {const.INVENTORIES_PATH}/{{sku}}",
            )
            return mapper.level_from_nodes(body, sku, self._location, when)
        body = self.client.request(
            "GET", const.INVENTORY_PATH, params={"sku": sku, "shipNode": self._location}
        )
        return mapper.level_from_inventory(body, sku, self.location, when)

    def _node_for(self, level: InventoryLevel) -> str | None:
        if level.location_ref and level.location_ref != const.DEFAULT_LOCATION:
            if self._location is not None and level.location_ref != self._location:
                raise ValidationError(
                    f"{level.variant_external_id}: location {level.location_ref!r} is not the configured "
                    f"ship node {self._location!r}",
                    details={"field": "location_ref"},
                )
            return level.location_ref
        return self._location

    def set_inventory(self, levels: Sequence[InventoryLevel]) -> None:
        """Set stock: one PUT per SKU for a few levels, one bulk feed (or several of `FEED_MAX_ITEMS`) for
        more than `bulk_inventory_threshold`, within `feeds_per_hour`."""
        wanted: dict[tuple[str, str | None], int] = {}
        for level in levels:
            if level.available is None:
                raise ValidationError(f"{level.variant_external_id}: stock to set is missing")
            wanted[(level.variant_external_id, self._node_for(level))] = max(0, level.available)
        if not wanted:
            return
        if len(wanted) > self.config["bulk_inventory_threshold"]:
            by_node: dict[str | None, list[tuple[str, int]]] = {}
            for (sku, node), amount in wanted.items():
                by_node.setdefault(node, []).append((sku, amount))
            for node, items in by_node.items():
                for start in range(0, len(items), const.FEED_MAX_ITEMS):
                    self.send_inventory_feed(items[start : start + const.FEED_MAX_ITEMS], node)
            return
        for (sku, node), amount in wanted.items():
            self._put_level(sku, node, amount)

    def _put_level(self, sku: str, node: str | None, amount: int) -> None:
        if self.config["inventory_source"] == "ship_nodes":
            if node is None:
                raise PermanentError(
                    "inventory writes per ship node need a location: set `location` in the config",
                    code="no_location",
                )
            body = self.client.request(
                "PUT",
                f"{const.INVENTORIES_PATH}/{path_segment(sku)}",
                body=mapper.node_inventory_body(node, amount),
                endpoint=f"PUT {const.INVENTORIES_PATH}/{{sku}}",
            )
            failed = [
                (name, status) for name, status in mapper.node_results(body) if status.upper() != "SUCCESS"
            ]
            if failed:
                raise PermanentError(
                    f"Walmart did not set the stock of {sku} at {', '.join(f'{n} ({s})' for n, s in failed)}",
                    code="inventory_rejected",
                    details={"sku": sku, "nodes": failed},
                )
            return
        self.client.request(
            "PUT",
            const.INVENTORY_PATH,
            params={"sku": sku, "shipNode": node},
            body=mapper.inventory_body(sku, amount),
        )

    def send_inventory_feed(
        self, items: Sequence[tuple[str, int]], ship_node: str | None = None
    ) -> FeedStatus:
        """Send one bulk inventory feed and poll its status for up to `feed_poll_seconds`; PermanentError when
        items failed, RetryableError when this hour's feed allowance is used up."""
        now = self._wall()
        self._feeds_sent = [sent for sent in self._feeds_sent if now - sent < 3600]
        if len(self._feeds_sent) >= self.config["feeds_per_hour"]:
            wait = 3600 - (now - self._feeds_sent[0])
            raise RetryableError(
                f"{self.config['feeds_per_hour']} inventory feeds sent in the last hour",
                retry_after=max(1.0, wait),
                code="feed_allowance",
            )
        feed_type = (
            "inventory" if ship_node is None or self.config["inventory_source"] == "sku" else "MP_INVENTORY"
        )
        node_for_feed = ship_node if feed_type == "MP_INVENTORY" else None
        body = self.client.request(
            "POST",
            const.FEEDS_PATH,
            params={"feedType": feed_type, "shipNode": ship_node if feed_type == "inventory" else None},
            body=mapper.inventory_feed(items, node_for_feed),
            endpoint=f"POST {const.FEEDS_PATH}?feedType={feed_type}",
            repeatable=False,
        )
        self._feeds_sent.append(now)
        feed_id = mapper.text(body.get("feedId")) if isinstance(body, Mapping) else None
        if not feed_id:
            raise PermanentError("Walmart accepted the inventory feed without a feedId", code="bad_response")
        logger.info("walmart inventory feed sent", extra={"feed_id": feed_id, "items": len(items)})
        status = FeedStatus(feed_id, "RECEIVED")
        deadline = self._monotonic() + self.config["feed_poll_seconds"]
        delay = POLL_INITIAL
        while self._monotonic() < deadline:
            self._sleep(min(delay, max(0.0, deadline - self._monotonic())))
            delay = min(delay * 2, 15.0)
            status = self.feed_status(feed_id)
            if status.done:
                break
        if status.done and (status.failed or status.status == "ERROR"):
            raise PermanentError(
                f"inventory feed {feed_id}: {status.failed} of {status.received} items failed"
                + (f", first {status.failures[0][0]}: {status.failures[0][1]}" if status.failures else ""),
                code="feed_items_failed",
                details={"feed_id": feed_id, "failures": list(status.failures)},
            )
        if not status.done:
            logger.info("walmart inventory feed still processing", extra={"feed_id": feed_id})
        return status

    def feed_status(self, feed_id: str) -> FeedStatus:
        body = self.client.request(
            "GET",
            f"{const.FEEDS_PATH}/{path_segment(feed_id)}",
            params={"includeDetails": "true", "limit": 50},
            endpoint=f"GET {const.FEEDS_PATH}/{{feedId}}",
        )
        try:
            return mapper.feed_status(feed_id, body)
        except ValueError as exc:
            raise PermanentError(f"feed {feed_id}: {exc}", code="bad_response") from None
