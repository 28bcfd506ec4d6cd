"""Feed endpoints of the Walmart emulator: `POST /v3/feeds` (inventory feeds, JSON or multipart, with the
hourly limit and size cap) and `GET /v3/feeds/{feedId}`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson
from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError, resource_errors
from connector.sandbox.walmart.wire import int_arg, json_response

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """`/v3/feeds` and `/v3/feeds/{feedId}`."""

    @app.post("/v3/feeds", endpoint="post_feed")
    def post_feed() -> Response:
        feed_type = request.args.get("feedType")
        if not feed_type:
            raise WalmartError.missing_param("feedType")
        if feed_type not in ("inventory", "MP_INVENTORY"):
            raise WalmartError.bad_param("feedType", f"Unsupported feedType {feed_type}")
        if (request.content_length or 0) > emulator.feed_max_bytes:
            raise WalmartError.resource(413, "REQUEST_ENTITY_TOO_LARGE", "Feed file exceeds the maximum size")
        upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
        raw = upload.read() if upload is not None else request.get_data(cache=True)
        if len(raw) > emulator.feed_max_bytes:
            raise WalmartError.resource(413, "REQUEST_ENTITY_TOO_LARGE", "Feed file exceeds the maximum size")
        recent = emulator.store.feeds_in_last_hour(feed_type)
        if len(recent) >= emulator.feed_limit_per_hour:
            wait = recent[len(recent) - emulator.feed_limit_per_hour] + 3600 - emulator.clock()
            raise WalmartError(
                429,
                resource_errors(
                    "REQUEST_THRESHOLD_VIOLATED",
                    f"Feed limit of {emulator.feed_limit_per_hour} per hour for {feed_type} reached",
                    category="APPLICATION",
                ),
                retry_after=wait,
            )
        try:
            body = orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            raise WalmartError.resource(400, "MALFORMED_REQUEST_CONTENT", "Feed is not valid JSON") from None
        key = "Inventory" if feed_type == "inventory" else "inventory"
        records = body.get(key) if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise WalmartError.bad_content(key, f"{key} must be a list of inventory records")
        ship_node = request.args.get("shipNode") or None
        if ship_node is not None and ship_node not in emulator.store.ship_nodes:
            raise WalmartError.bad_param("shipNode", f"Invalid shipNode {ship_node}")
        feed = emulator.store.submit_feed(feed_type, records, ship_node)
        logger.info(
            "walmart emulator feed received", extra={"feed_id": feed.feed_id, "records": len(records)}
        )
        return json_response({"feedId": feed.feed_id})

    @app.get("/v3/feeds/<path:feed_id>", endpoint="get_feed")
    def get_feed(feed_id: str) -> Response:
        feed = emulator.store.feed(feed_id)
        if feed is None:
            raise WalmartError.not_found(f"Feed {feed_id} not found", field="feedId")
        return json_response(
            emulator.store.feed_json(
                feed,
                include_details=request.args.get("includeDetails", "false").lower() == "true",
                offset=int_arg("offset", 0),
                limit=min(int_arg("limit", 50, minimum=1), 50),
            )
        )
