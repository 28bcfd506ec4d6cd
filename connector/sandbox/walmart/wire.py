"""What every endpoint of the Walmart emulator shares on the wire: the header names, JSON answers and bodies,
integer query arguments, opaque base64 cursors and the date formats the API accepts."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Response, request

from connector.sandbox.walmart.envelopes import WalmartError

ACCESS_TOKEN = "WM_SEC.ACCESS_TOKEN"  # noqa: S105 (a header name)
CORRELATION_ID = "WM_QOS.CORRELATION_ID"
SERVICE_NAME = "WM_SVC.NAME"
MCS_HEADER = {"headerAttributes": {"martId": "202", "buId": "0"}}
DAY_MS = 86_400_000
SCOPES = {
    "item": "full_access",
    "inventory": "full_access",
    "orders": "full_access",
    "feeds": "full_access",
    "notifications": "full_access",
    "fulfillment": "full_access",
}


def json_response(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status=status, mimetype="application/json")


def int_arg(name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise WalmartError.bad_param(name, f"{name} must be an integer") from None
    if value < minimum:
        raise WalmartError.bad_param(name, f"{name} must be at least {minimum}")
    return value


def json_body() -> Any:
    if request.mimetype in ("application/xml", "text/xml"):
        raise WalmartError.resource(415, "UNSUPPORTED_MEDIA_TYPE", "Only application/json is supported")
    raw = request.get_data(cache=True)
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise WalmartError.resource(
            400, "MALFORMED_REQUEST_CONTENT", "Request body is not valid JSON"
        ) from None


def encode_cursor(state: dict[str, Any]) -> str:
    return base64.b64encode(orjson.dumps(state)).decode()


def decode_cursor(raw: str, field: str) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.b64decode(raw.encode(), validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise WalmartError.bad_param(field, f"Invalid {field}") from None
    if not isinstance(state, dict) or not isinstance(state.get("p"), int):
        raise WalmartError.bad_param(field, f"Invalid {field}")
    return state


def parse_date(raw: str, field: str) -> int:
    """`yyyy-MM-dd`, ISO date-time (Z or offset) or epoch ms -> epoch ms."""
    text = raw.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            parsed = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
    except ValueError:
        raise WalmartError.bad_param(field, f"{field} must be yyyy-MM-dd or yyyy-MM-ddTHH:mm:ssZ") from None
    return int(parsed.timestamp() * 1000)


def iso_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
