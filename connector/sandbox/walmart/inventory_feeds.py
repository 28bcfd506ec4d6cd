"""Bulk inventory feeds of an emulated Walmart seller: submitted, applied record by record once due, and
shown with their per-record ingestion results."""

from __future__ import annotations

import uuid
from typing import Any

from connector.sandbox.walmart.inventory import InventoryMixin
from connector.sandbox.walmart.records import UNIT, Feed, epoch_ms


class FeedsMixin(InventoryMixin):
    """The seller's inventory feeds."""

    def feeds_in_last_hour(self, feed_type: str) -> list[float]:
        with self.lock:
            horizon = self.clock() - 3600
            return sorted(
                f.submitted_at
                for f in self.feeds.values()
                if f.feed_type == feed_type and f.submitted_at > horizon
            )

    def submit_feed(self, feed_type: str, records: list[dict[str, Any]], ship_node: str | None) -> Feed:
        with self.lock:
            now = self.clock()
            feed_id = f"{uuid.UUID(int=self._random.getrandbits(128)).hex.upper()}@AQMBAQA"
            feed = Feed(feed_id, feed_type, now, now + self.feed_delay, ship_node, records)
            self.feeds[feed_id] = feed
            self._pending_feeds.append(feed)
            return feed

    def feed(self, feed_id: str) -> Feed | None:
        with self.lock:
            self.process_due()
            return self.feeds.get(feed_id)

    def _apply_feed(self, feed: Feed) -> None:
        for index, record in enumerate(feed.records):
            sku = str(record.get("sku", ""))
            error: tuple[str, str, str] | None = None
            targets: list[tuple[str, Any]] = []
            if feed.feed_type == "inventory":
                targets = [(feed.ship_node or self.default_ship_node, record.get("quantity"))]
            else:
                nodes = record.get("shipNodes")
                if not isinstance(nodes, list) or not nodes:
                    error = ("DATA_ERROR", "shipNodes", "shipNodes is required")
                else:
                    targets = [
                        (
                            str(n.get("shipNode", "")) if isinstance(n, dict) else "",
                            n.get("quantity") if isinstance(n, dict) else None,
                        )
                        for n in nodes
                    ]
            if error is None and sku not in self.items:
                error = ("DATA_ERROR", "sku", f"Item with sku {sku} not found")
            parsed: list[tuple[str, int]] = []
            if error is None:
                for node, qty in targets:
                    amount = qty.get("amount") if isinstance(qty, dict) else None
                    if node not in self.ship_nodes:
                        error = ("DATA_ERROR", "shipNode", f"Invalid shipNode {node}")
                        break
                    if not isinstance(qty, dict) or qty.get("unit") != UNIT:
                        error = ("DATA_ERROR", "quantity.unit", "quantity.unit must be EACH")
                        break
                    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                        error = (
                            "DATA_ERROR",
                            "quantity.amount",
                            "quantity.amount must be a non-negative integer",
                        )
                        break
                    parsed.append((node, amount))
            if error is None:
                before = self.total_available(sku)
                for node, amount in parsed:
                    self.stock[sku][node].input_qty = amount
                self._after_stock_change(sku, before)
                feed.succeeded += 1
            else:
                feed.failed += 1
            item = self.items.get(sku)
            feed.results.append(
                {
                    "martId": 0,
                    "sku": sku,
                    "wpid": item.wpid if item else None,
                    "index": index,
                    "itemid": item.item_id if item else None,
                    "productIdentifiers": None,
                    "ingestionStatus": "SUCCESS" if error is None else error[0],
                    "ingestionErrors": {
                        "ingestionError": None
                        if error is None
                        else [
                            {
                                "type": error[0],
                                "code": "ERR_EXT_DATA_0101",
                                "field": error[1],
                                "description": error[2],
                            }
                        ]
                    },
                    "additionalAttributes": None,
                }
            )
        feed.status = "PROCESSED"

    def feed_json(self, feed: Feed, *, include_details: bool, offset: int, limit: int) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            status = feed.status
            if status == "RECEIVED" and now >= feed.submitted_at + (feed.due_at - feed.submitted_at) / 2:
                status = "INPROGRESS"
            processing = 0 if status == "PROCESSED" else len(feed.records)
            document: dict[str, Any] = {
                "feedId": feed.feed_id,
                "feedStatus": status,
                "shipNode": feed.ship_node,
                "submittedBy": None,
                "feedSubmissionDate": epoch_ms(feed.submitted_at),
                "ingestionErrors": {"ingestionError": None},
                "itemsReceived": len(feed.records),
                "itemsSucceeded": feed.succeeded,
                "itemsFailed": feed.failed,
                "itemsProcessing": processing,
                "offset": offset,
                "limit": limit,
            }
            if include_details:
                document["itemDetails"] = {"itemIngestionStatus": feed.results[offset : offset + limit]}
            return document
