"""Item endpoints of the Walmart emulator: `GET /v3/items` (cursor pages, some shorter than asked) and
`GET /v3/items/{id}` by SKU, GTIN, UPC or item id."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.wire import decode_cursor, encode_cursor, int_arg, json_response

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """`/v3/items` and `/v3/items/{id}`."""

    @app.get("/v3/items", endpoint="get_items")
    def items() -> Response:
        limit = min(int_arg("limit", 20, minimum=1), emulator.items_max_limit)
        raw_cursor = request.args.get("nextCursor")
        filters = {
            "sku": request.args.get("sku") or None,
            "lifecycle_status": request.args.get("lifecycleStatus") or None,
            "published_status": request.args.get("publishedStatus") or None,
        }
        if raw_cursor in (None, "", "*"):
            position, page = int_arg("offset", 0), 0
        else:
            state = decode_cursor(raw_cursor, "nextCursor")
            position, page = state["p"], int(state.get("n", 0))
            remembered = state.get("f") or {}
            if not any(filters.values()) and isinstance(remembered, dict):
                filters = {k: remembered.get(k) for k in filters}
        wanted = limit
        if (
            emulator.short_page_every
            and limit > 1
            and page % emulator.short_page_every == emulator.short_page_every - 1
        ):
            wanted = max(1, limit - limit // 3 - 1)
        found, following, total = emulator.store.items_page(position, wanted, **filters)
        document: dict[str, Any] = {"ItemResponse": found, "totalItems": total}
        if following is not None:
            document["nextCursor"] = encode_cursor(
                {"p": following, "n": page + 1, "f": {k: v for k, v in filters.items() if v}}
            )
        return json_response(document)

    @app.get("/v3/items/<path:item_id>", endpoint="get_item")
    def item(item_id: str) -> Response:
        kind = (request.args.get("productIdType") or "SKU").upper()
        found = None
        if kind == "SKU":
            found = emulator.store.item(item_id)
        elif kind in ("GTIN", "UPC", "ITEM_ID", "EAN", "ISBN"):
            with emulator.store.lock:
                for candidate in emulator.store.items.values():
                    if item_id in (candidate.gtin, candidate.upc, candidate.item_id) and item_id:
                        found = candidate
                        break
        else:
            raise WalmartError.bad_param("productIdType", f"Invalid productIdType {kind}")
        if found is None:
            raise WalmartError.not_found(f"Item {item_id} not found", field=kind.lower())
        return json_response({"ItemResponse": [found.to_json()], "totalItems": 1})
