"""Purchase order endpoints of the Walmart emulator: `GET /v3/orders` and `/v3/orders/released` (filtered,
newest first, with Walmart's query-string cursor), one order, acknowledge, ship and cancel."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.records import epoch_ms
from connector.sandbox.walmart.wire import DAY_MS, int_arg, iso_from_ms, json_body, json_response, parse_date

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def _list_orders(emulator: WalmartEmulator, *, released_only: bool) -> Response:
    """`GET /v3/orders` or `/v3/orders/released`: a page of matching orders and the cursor to the next."""
    args = request.args
    now_ms = epoch_ms(emulator.clock())
    limit = min(int_arg("limit", 100, minimum=1), 200)
    offset = int_arg("soIndex", 0) if args.get("hasMoreElements") == "true" else 0

    def date(name: str) -> int | None:
        raw = args.get(name)
        return parse_date(raw, name) if raw else None

    start = date("createdStartDate") or now_ms - 7 * DAY_MS
    end = date("createdEndDate") or now_ms
    ship_node_type = args.get("shipNodeType") or "SellerFulfilled"
    if ship_node_type not in ("SellerFulfilled", "WFSFulfilled", "3PLFulfilled"):
        raise WalmartError.bad_param("shipNodeType", f"Invalid shipNodeType {ship_node_type}")
    kept = ("status", "sku", "purchaseOrderId", "customerOrderId", "lastModifiedStartDate")
    filters = {key: args[key] for key in (*kept, "lastModifiedEndDate") if args.get(key)}
    found = emulator.store.query_orders(
        start_ms=max(start, now_ms - 180 * DAY_MS),
        end_ms=end,
        ship_node_type=ship_node_type,
        status=filters.get("status"),
        sku=filters.get("sku"),
        purchase_order_id=filters.get("purchaseOrderId"),
        customer_order_id=filters.get("customerOrderId"),
        modified_from_ms=date("lastModifiedStartDate"),
        modified_to_ms=date("lastModifiedEndDate"),
        released_only=released_only,
    )
    page = found[offset : offset + limit]
    if not page and emulator.orders_empty_404:
        raise WalmartError.resource(
            404,
            "CONTENT_NOT_FOUND.GMP_ORDER_API",
            "No orders found for the given search criteria",
            field="createdStartDate",
            info="Requested content could not be found.",
        )
    cursor: str | None = None
    if offset + len(page) < len(found):
        cursor = "?" + urlencode(
            {
                "limit": limit,
                "hasMoreElements": "true",
                "soIndex": offset + len(page),
                "poIndex": len(page),
                "partnerId": emulator.store.partner_id,
                "sellerId": emulator.store.partner_id,
                "createdStartDate": iso_from_ms(start),
                "createdEndDate": iso_from_ms(end),
                "shipNodeType": ship_node_type,
                **filters,
            }
        )
    with emulator.store.lock:
        elements = [o.to_json() for o in page]
    return json_response(
        {
            "list": {
                "meta": {"totalCount": len(found), "limit": limit, "nextCursor": cursor},
                "elements": {"order": elements},
            }
        }
    )


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """The `/v3/orders` routes."""

    @app.get("/v3/orders", endpoint="get_orders")
    def orders() -> Response:
        return _list_orders(emulator, released_only=False)

    @app.get("/v3/orders/released", endpoint="get_released_orders")
    def released() -> Response:
        return _list_orders(emulator, released_only=True)

    @app.get("/v3/orders/<purchase_order_id>", endpoint="get_order")
    def order(purchase_order_id: str) -> Response:
        with emulator.store.lock:
            return json_response({"order": emulator.store.order(purchase_order_id).to_json()})

    @app.post("/v3/orders/<purchase_order_id>/acknowledge", endpoint="acknowledge_order")
    def acknowledge(purchase_order_id: str) -> Response:
        with emulator.store.lock:
            return json_response({"order": emulator.store.acknowledge(purchase_order_id).to_json()})

    @app.post("/v3/orders/<purchase_order_id>/shipping", endpoint="ship_order")
    def ship(purchase_order_id: str) -> Response:
        payload = json_body()
        with emulator.store.lock:
            return json_response({"order": emulator.store.ship_order(purchase_order_id, payload).to_json()})

    @app.post("/v3/orders/<purchase_order_id>/cancel", endpoint="cancel_order")
    def cancel(purchase_order_id: str) -> Response:
        payload = json_body()
        with emulator.store.lock:
            return json_response({"order": emulator.store.cancel_order(purchase_order_id, payload).to_json()})
