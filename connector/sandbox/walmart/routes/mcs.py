"""Multichannel Solutions endpoints of the Walmart emulator under `/v3/fulfillment/orders-fulfillments`:
sales channels, fulfilment order create, status and cancel."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from connector.sandbox.walmart.envelopes import WalmartError
from connector.sandbox.walmart.records import FulfilmentOrder
from connector.sandbox.walmart.wire import MCS_HEADER, int_arg, json_body, json_response, parse_date

if TYPE_CHECKING:
    from connector.sandbox.walmart.app import WalmartEmulator

logger = logging.getLogger(__name__)


def mcs_body(emulator: WalmartEmulator) -> dict[str, Any]:
    """The `payload` of an MCS request body whose header attributes are checked (enrolled sellers only)."""
    emulator.store.require_mcs()
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("payload"), dict):
        raise WalmartError.mcs(
            400, "ERR_EXT_DATA_0021001", "The payload structure is not valid", field="payload"
        )
    attributes = (
        body.get("header", {}).get("headerAttributes") if isinstance(body.get("header"), dict) else None
    )
    if not isinstance(attributes, dict):
        raise WalmartError.mcs(
            400, "ERR_EXT_DATA_0021001", "header.headerAttributes is required", field="header"
        )
    for key, value in MCS_HEADER["headerAttributes"].items():
        if attributes.get(key) != value:
            raise WalmartError.mcs(
                400, "ERR_EXT_DATA_0021001", f"{key} must be {value}", field=f"headerAttributes.{key}"
            )
    payload: dict[str, Any] = body["payload"]
    return payload


def channels_answer(emulator: WalmartEmulator, channels: list[dict[str, Any]]) -> Response:
    return json_response(
        {
            "status": "OK",
            "header": MCS_HEADER,
            "payload": {"partnerId": emulator.store.partner_id, "mcsDetails": channels},
        }
    )


def _change_channels(emulator: WalmartEmulator, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add (POST) or update (PUT) the channels `mcsDetails` describes: their JSON, in order."""
    changed = []
    for detail in details:
        if request.method == "POST":
            name = detail.get("orderChannelName")
            if not isinstance(name, str) or not name:
                raise WalmartError.mcs(
                    400,
                    "ERR_EXT_DATA_0021001",
                    "orderChannelName is required",
                    field="orderChannelName",
                )
            changed.append(
                emulator.store.add_channel(
                    name,
                    return_address=detail.get("returnAddress") or {},
                    carrier_preference=str(detail.get("carrierPreference") or ""),
                    active=bool(detail.get("active", True)),
                ).to_json()
            )
        else:
            with emulator.store.lock:
                channel = emulator.store.channels.get(str(detail.get("orderChannelId")))
                if channel is None:
                    raise WalmartError.mcs(
                        404, "OS_NOT_FOUND_ERROR", "orderChannelId not found", field="orderChannelId"
                    )
                if "orderChannelName" in detail:
                    channel.order_channel_name = str(detail["orderChannelName"])
                if "returnAddress" in detail:
                    channel.return_address = dict(detail["returnAddress"] or {})
                if "carrierPreference" in detail:
                    channel.carrier_preference = str(detail["carrierPreference"])
                if "active" in detail:
                    channel.active = bool(detail["active"])
                changed.append(channel.to_json())
    return changed


def _status_orders(emulator: WalmartEmulator) -> list[FulfilmentOrder]:
    """The orders a status query names (orderNumber or requestId), or a page of them by order date."""
    number = request.args.get("orderNumber")
    request_id = request.args.get("requestId")
    if number or request_id:
        found = emulator.store.fulfilment(seller_order_id=number, request_id=request_id)
        if found is None:
            raise WalmartError.mcs(
                404,
                "OS_NOT_FOUND_ERROR",
                f"Order {number or request_id} not found",
                field="orderNumber" if number else "requestId",
            )
        orders = [found]
    else:
        start_raw, end_raw = request.args.get("fromOrderDate"), request.args.get("toOrderDate")
        if not start_raw:
            raise WalmartError.mcs(
                400,
                "INVALID_MCS_REQUEST",
                "orderNumber or fromOrderDate is required",
                field="orderNumber",
            )
        start = parse_date(start_raw, "fromOrderDate") / 1000
        end = (parse_date(end_raw, "toOrderDate") / 1000 + 86400) if end_raw else emulator.clock() + 86400
        limit = int_arg("limit", 10, minimum=1)
        offset = int_arg("offset", 0)
        if limit > 50 or offset > 50000:
            raise WalmartError.mcs(
                400, "INVALID_MCS_REQUEST", "limit must be 1-50, offset 0-50000", field="limit"
            )
        orders = sorted(
            emulator.store.fulfilments_between(start, end),
            key=lambda o: (o.order_placed_time, o.seller_order_id),
        )
        if (request.args.get("sortOrder") or "DESC").upper() == "DESC":
            orders.reverse()
        orders = orders[offset : offset + limit]
    return orders


def _cancel_lines(payload: dict[str, Any]) -> list[tuple[str, int | None]] | None:
    """(sellerLineId, quantity or None for the whole line) of a cancel payload; None: every line."""
    items = payload.get("orderItems")
    lines: list[tuple[str, int | None]] | None = None
    if items is not None:
        if not isinstance(items, list):
            raise WalmartError.mcs(
                400, "ERR_EXT_DATA_0021001", "orderItems must be a list", field="orderItems"
            )
        lines = []
        for entry in items:
            qty = entry.get("qty") if isinstance(entry, dict) else None
            value = qty.get("measurementValue") if isinstance(qty, dict) else None
            line_id = entry.get("sellerLineId") if isinstance(entry, dict) else None
            if not isinstance(line_id, str):
                raise WalmartError.mcs(
                    400, "ERR_EXT_DATA_0021001", "sellerLineId is required", field="sellerLineId"
                )
            lines.append((line_id, value if isinstance(value, int) and value > 0 else None))
    return lines


def register(app: Flask, emulator: WalmartEmulator) -> None:
    """The MCS routes."""
    base = "/v3/fulfillment/orders-fulfillments"

    @app.route(f"{base}/channel-details", methods=["GET", "POST", "PUT"], endpoint="mcs_channels")
    def channels() -> Response:
        if request.method == "GET":
            emulator.store.require_mcs()
            with emulator.store.lock:
                return channels_answer(emulator, [c.to_json() for c in emulator.store.channels.values()])
        payload = mcs_body(emulator)
        details = payload.get("mcsDetails")
        if not isinstance(details, list) or not details or not all(isinstance(d, dict) for d in details):
            raise WalmartError.mcs(400, "ERR_EXT_DATA_0021001", "mcsDetails is required", field="mcsDetails")
        return channels_answer(emulator, _change_channels(emulator, details))

    @app.post(base, endpoint="mcs_create")
    def create() -> Response:
        order = emulator.store.create_fulfilment(mcs_body(emulator))
        return json_response(
            {"status": "ACCEPTED", "header": MCS_HEADER, "payload": {"requestId": order.request_id}}
        )

    @app.get(f"{base}/status", endpoint="mcs_status")
    def status() -> Response:
        emulator.store.require_mcs()
        orders = _status_orders(emulator)
        return json_response(
            {
                "status": "OK",
                "header": MCS_HEADER,
                "payload": [emulator.store.fulfilment_json(o) for o in orders],
            }
        )

    @app.post(f"{base}/cancel", endpoint="mcs_cancel")
    def cancel() -> Response:
        payload = mcs_body(emulator)
        seller_order_id = payload.get("sellerOrderId") or payload.get("customerOrderNo")
        if not isinstance(seller_order_id, str) or not seller_order_id:
            raise WalmartError.mcs(
                400, "INVALID_SELLER_ORDER_ID", "sellerOrderId is required", field="sellerOrderId"
            )
        lines = _cancel_lines(payload)
        emulator.store.cancel_fulfilment(seller_order_id, lines)
        return json_response(
            {
                "status": "ACCEPTED",
                "header": MCS_HEADER,
                "payload": {"requestId": str(uuid.uuid4()), "sellerOrderId": seller_order_id},
            }
        )
