"""Inventory endpoints of the Walmart emulator: single-node `/v3/inventory` and multi-node `/v3/inventories`
(read, set per node, and paged)."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.records import UNIT, quantity
from connector.sandbox.walmart.wire import decode_cursor, encode_cursor, int_arg, json_body, json_response

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """`/v3/inventory` and `/v3/inventories`."""

    def sku_arg() -> str:
        sku = request.args.get("sku")
        if not sku:
            raise WalmartError.missing_param("sku")
        return sku

    def amount_of(document: Any, field: str) -> int:
        if not isinstance(document, dict) or document.get("unit") != UNIT:
            raise WalmartError.bad_content(f"{field}.unit", f"{field}.unit must be EACH")
        amount = document.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise WalmartError.bad_content(
                f"{field}.amount", f"{field}.amount must be a non-negative integer"
            )
        return amount

    @app.get("/v3/inventory", endpoint="get_inventory")
    def get_inventory() -> Response:
        sku = sku_arg()
        amount = emulator.store.get_quantity(sku, request.args.get("shipNode") or None)
        return json_response({"sku": sku, "quantity": quantity(amount)})

    @app.put("/v3/inventory", endpoint="put_inventory")
    def put_inventory() -> Response:
        sku = sku_arg()
        body = json_body()
        if not isinstance(body, dict):
            raise WalmartError.bad_content("inventory", "Body must be an inventory object")
        if body.get("sku") not in (None, sku):
            raise WalmartError.bad_content("sku", "sku in the body does not match the sku parameter")
        amount = amount_of(body.get("quantity"), "quantity")
        emulator.store.set_quantity(sku, amount, request.args.get("shipNode") or None)
        logger.debug("walmart emulator inventory set", extra={"sku": sku, "amount": amount})
        return json_response({"sku": sku, "quantity": quantity(amount)})

    @app.get("/v3/inventories", endpoint="list_inventories")
    def list_inventories() -> Response:
        limit = min(int_arg("limit", 10, minimum=1), 50)
        raw = request.args.get("nextCursor")
        position = 0 if not raw else decode_cursor(raw, "nextCursor")["p"]
        found, following, total = emulator.store.inventories_page(position, limit)
        meta: dict[str, Any] = {"totalCount": total}
        if following is not None:
            meta["nextCursor"] = encode_cursor({"p": following, "r": secrets.token_hex(4)})
        return json_response({"meta": meta, "elements": {"inventories": found}})

    @app.get("/v3/inventories/<path:sku>", endpoint="get_inventories")
    def get_inventories(sku: str) -> Response:
        return json_response(emulator.store.node_json(sku, request.args.get("shipNode") or None))

    @app.put("/v3/inventories/<path:sku>", endpoint="put_inventories")
    def put_inventories(sku: str) -> Response:
        body = json_body()
        nodes = (
            body.get("inventories", {}).get("nodes")
            if isinstance(body, dict) and isinstance(body.get("inventories"), dict)
            else None
        )
        if not isinstance(nodes, list) or not nodes:
            raise WalmartError.bad_content("inventories.nodes", "inventories.nodes is required")
        if emulator.store.item(sku) is None:
            raise WalmartError.not_found(f"Item with sku {sku} not found", field="sku")
        results: list[dict[str, Any]] = []
        for entry in nodes:
            node = entry.get("shipNode") if isinstance(entry, dict) else None
            try:
                if not isinstance(node, str) or node not in emulator.store.ship_nodes:
                    raise WalmartError.bad_content("shipNode", f"Invalid shipNode {node}")
                amount = amount_of(entry.get("inputQty"), "inputQty")
                emulator.store.set_quantity(sku, amount, node)
                results.append({"shipNode": node, "status": "Success"})
            except WalmartError as failure:
                errors = (failure.body or {}).get("errors", [])
                results.append({"shipNode": node, "status": "Failure", "errors": errors})
        return json_response({"sku": sku, "nodes": results})
