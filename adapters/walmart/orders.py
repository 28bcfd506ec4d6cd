"""Orders placed on Walmart (purchase orders): read in windows of creation time, each window followed through
its cursor."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from adapters.walmart import const, mapper, order_mapper
from adapters.walmart.base import WalmartBase
from adapters.walmart.order_mapper import WalmartOrder
from connector.domain.errors import NotFoundError, ValidationError

logger = logging.getLogger(__name__)


def _walmart_time(when: datetime) -> str:
    """`when` in UTC to the second, as Walmart's order date filters take it (`2026-01-02T03:04:05Z`)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WalmartOrders(WalmartBase):
    """Purchase order reads of `WalmartAdapter` (mixed into it)."""

    def iter_orders(
        self,
        created_since: datetime,
        created_until: datetime | None = None,
        *,
        ship_node_type: str | None = None,
    ) -> Iterator[WalmartOrder]:
        """Orders placed on Walmart from `created_since` (at most 180 days back) until `created_until` (open
        when None), in windows of `ORDERS_WINDOW_DAYS`, each followed through its `nextCursor` (a whole
        query string). Window bounds are whole seconds and inclusive, so an order placed on a bound can come
        twice: callers apply an order once per `purchase_order_id`."""
        if ship_node_type is not None and ship_node_type not in const.SHIP_NODE_TYPES:
            raise ValidationError(f"ship_node_type must be one of {', '.join(sorted(const.SHIP_NODE_TYPES))}")
        now = datetime.fromtimestamp(self._wall(), UTC)
        start = created_since if created_since.tzinfo else created_since.replace(tzinfo=UTC)
        start = max(start, now - timedelta(days=const.ORDERS_MAX_AGE_DAYS))
        end = None
        if created_until is not None:
            end = created_until if created_until.tzinfo else created_until.replace(tzinfo=UTC)
        return self._orders(start, end, ship_node_type)

    def _orders(
        self, start: datetime, end: datetime | None, ship_node_type: str | None
    ) -> Iterator[WalmartOrder]:
        """Windows of `ORDERS_WINDOW_DAYS`; without `end` the last window is open (orders placed while it
        is read are not lost to a clock difference)."""
        window = timedelta(days=const.ORDERS_WINDOW_DAYS)
        while True:
            limit = end if end is not None else datetime.fromtimestamp(self._wall(), UTC)
            if start >= limit:
                return
            stop = start + window
            last = stop >= limit
            if not last:
                window_end: str | None = _walmart_time(stop)
            else:
                window_end = _walmart_time(end) if end is not None else None
            params: dict[str, object] = {
                "createdStartDate": _walmart_time(start),
                "createdEndDate": window_end,
                "limit": const.ORDERS_PAGE_LIMIT,
                "shipNodeType": ship_node_type,
            }
            query: str | None = None
            while True:
                try:
                    page = self.client.request(
                        "GET", const.ORDERS_PATH, params=None if query else params, query=query
                    )
                except NotFoundError:  # "no orders match" comes as 404
                    break
                for raw in order_mapper.orders_of(page):
                    try:
                        yield order_mapper.parse_order(raw)
                    except ValueError as exc:
                        logger.warning(
                            "unreadable walmart order",
                            extra={
                                "purchase_order_id": mapper.text(raw.get("purchaseOrderId")),
                                "error": str(exc),
                            },
                        )
                query = mapper.next_cursor(page)
                if query is None:
                    break
            if last:
                return
            start = stop
