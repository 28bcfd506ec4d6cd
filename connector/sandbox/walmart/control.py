"""The Walmart emulator's control endpoints (mounted under `/_sandbox` beside the Marketplace API, outside its
pipeline of tokens, throttling and faults; see `connector.sandbox.control`). Each change is the seller's or
Walmart's own, so it sends the notifications Walmart would:

    GET    /_sandbox                         the seller: API keys, partner id, ship nodes, Multichannel
                                             channels, counts, these endpoints
    POST   /_sandbox/items                   {"sku", "name"?, "price"?, "quantity"?}: one item; or
                                             {"count": N, "quantity"?}: N generated items
    POST   /_sandbox/inventory               {"sku", "quantity", "ship_node"?} (INVENTORY_OOS when it runs out)
    POST   /_sandbox/orders                  {"lines": [{"sku", "quantity"}]}: a purchase order placed on
                                             Walmart.com (PO_CREATED)
    GET    /_sandbox/fulfilments             the Multichannel orders pushed to the seller, with their status
    POST   /_sandbox/fulfilments/<id>/ship   {"tracking_number"?} (ORDER_SHIPMENT_UPDATE, ORDER_STATUS_UPDATE)
    POST   /_sandbox/fulfilments/<id>/cancel (ORDER_STATUS_UPDATE)
    POST   /_sandbox/faults                  {"next": [503, {"status": 429, "retry_after": 2}, {"latency": 5},
                                             {"drop": true}, {"drop_after": true}], "endpoints"?: ["mcs_create",
                                             ...]} and/or {"probability": 0.2, "faults": [...], "endpoints"?,
                                             "seed"?}: answers of the next API calls (to those endpoints)
    DELETE /_sandbox/faults                  no more faults

Endpoint names are the API's route names (`get_items`, `put_inventory`, `mcs_create`, ...; see the app
module); Multichannel order ids are their `sellerOrderId`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from flask import Flask, Response

from connector.sandbox.control import (
    ControlError,
    answer,
    body,
    control_app,
    faults,
    integer,
    probability,
)
from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.faults import ApiFault
from connector.sandbox.walmart.records import FulfilmentOrder
from connector.sandbox.walmart.store import Store

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

ENDPOINTS: Final = (
    "GET /_sandbox",
    "POST /_sandbox/items",
    "POST /_sandbox/inventory",
    "POST /_sandbox/orders",
    "GET /_sandbox/fulfilments",
    "POST /_sandbox/fulfilments/<id>/ship",
    "POST /_sandbox/fulfilments/<id>/cancel",
    "POST /_sandbox/faults",
    "DELETE /_sandbox/faults",
)


def fulfilment_json(order: FulfilmentOrder) -> dict[str, Any]:
    return {
        "seller_order_id": order.seller_order_id,
        "status": order.status,
        "lines": [
            {"id": line.seller_line_id, "sku": line.sku, "quantity": line.qty, "status": line.status}
            for line in order.lines
        ],
    }


def _description(envelope: Any) -> str:
    """The first `description` in one of Walmart's error envelopes."""
    if isinstance(envelope, dict):
        if isinstance(envelope.get("description"), str):
            return str(envelope["description"])
        envelope = list(envelope.values())
    if isinstance(envelope, list):
        return next((found for part in envelope if (found := _description(part))), "")
    return ""


def _add_items(store: Store, document: dict[str, Any]) -> Response:
    quantity = integer(document, "quantity", 10)
    if "count" in document:
        made = store.seed_catalog(
            integer(document, "count", minimum=1),
            sku_prefix=f"WM-SKU-{len(store.items)}-",
            quantity=quantity,
        )
        return answer({"skus": [item.sku for item in made]}, 201)
    sku = document.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise ControlError(400, "give an item's sku, or a count")
    price = document.get("price", 19.99)
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise ControlError(400, "price must be a number")
    item = store.add_item(
        sku,
        product_name=document.get("name"),
        price=float(price),
        quantity_by_node={store.default_ship_node: quantity},
    )
    return answer({"sku": item.sku, "item_id": item.item_id, "quantity": quantity}, 201)


def _purchase(store: Store, document: dict[str, Any]) -> Response:
    lines = document.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ControlError(400, "lines must list {sku, quantity}")
    wanted = []
    for line in lines:
        if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
            raise ControlError(400, "each line needs a sku")
        wanted.append((line["sku"], integer(line, "quantity", 1, minimum=1)))
    order = store.add_order(wanted)
    return answer({"purchase_order_id": order.purchase_order_id}, 201)


def _set_faults(emulator: WalmartEmulator, document: dict[str, Any]) -> Response:
    endpoints = document.get("endpoints")
    if endpoints is not None and (
        not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints)
    ):
        raise ControlError(400, "endpoints must be a list of endpoint names")
    planned = faults(document, "next", ApiFault)
    if planned:
        emulator.faults.plan(*planned, endpoints=endpoints)
    if "probability" in document:
        emulator.faults.set_random(
            probability(document),
            faults(document, "faults", ApiFault),
            endpoints=endpoints,
            seed=integer(document, "seed", 0),
        )
    return answer({"planned": len(planned)})


def build(emulator: WalmartEmulator) -> Flask:
    """The control app of one emulated seller."""
    app = control_app("walmart-sandbox")
    store = emulator.store

    @app.errorhandler(WalmartError)
    def refused(error: WalmartError) -> Response:
        return answer({"error": _description(error.body) or f"refused with {error.status}"}, error.status)

    @app.get("/")
    def seller() -> Response:
        with store.lock:
            channels = [c.order_channel_id for c in store.channels.values()]
            counts = {
                "items": len(store.items),
                "fulfilments": len(store.fulfilments),
                "orders": len(store.orders),
            }
        return answer(
            {
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
                "partner_id": store.partner_id,
                "ship_nodes": store.ship_nodes,
                "mcs_enrolled": store.mcs_enrolled,
                "channels": channels,
                **counts,
                "endpoints": ENDPOINTS,
            }
        )

    @app.post("/items")
    def add_items() -> Response:
        return _add_items(store, body())

    @app.post("/inventory")
    def set_stock() -> Response:
        document = body()
        sku = str(document.get("sku") or "")
        store.set_quantity(sku, integer(document, "quantity"), document.get("ship_node"))
        return answer({"sku": sku, "quantity": store.get_quantity(sku, document.get("ship_node"))})

    @app.post("/orders")
    def purchase() -> Response:
        return _purchase(store, body())

    @app.get("/fulfilments")
    def fulfilments() -> Response:
        with store.lock:
            listed = [fulfilment_json(order) for order in store.fulfilments.values()]
        return answer({"fulfilments": listed})

    @app.post("/fulfilments/<seller_order_id>/ship")
    def ship(seller_order_id: str) -> Response:
        if seller_order_id not in store.fulfilments:
            raise ControlError(404, f"no Multichannel order {seller_order_id}")
        tracking = str(body().get("tracking_number") or "1Z999AA10123456784")
        try:
            order = store.ship_fulfilment(seller_order_id, tracking_number=tracking)
        except ValueError as exc:
            raise ControlError(409, str(exc)) from None
        return answer(fulfilment_json(order))

    @app.post("/fulfilments/<seller_order_id>/cancel")
    def cancel(seller_order_id: str) -> Response:
        return answer(fulfilment_json(store.cancel_fulfilment(seller_order_id, None)))

    @app.post("/faults")
    def set_faults() -> Response:
        return _set_faults(emulator, body())

    @app.delete("/faults")
    def clear_faults() -> Response:
        emulator.faults.clear()
        return answer({"planned": 0})

    return app
