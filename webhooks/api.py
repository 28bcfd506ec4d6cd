"""Platform API for webhook endpoints: the `/v1/webhook-endpoints` routes a platform client calls with its key.

Every route authenticates the bearer key (connector.clients) and scopes every query to that client, so another
client's endpoint or delivery is a 404. Bodies are checked with strict pydantic models; bad input is a 4xx
problem document (code `invalid_request` with field errors), and a failed request writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as SchemaError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector import clients
from connector.api.openapi import doc
from connector.api.webhook_models import (
    DeliveriesQuery,
    DeliveryPage,
    Replayed,
    WebhookEndpointList,
    WebhookEndpointOut,
)
from connector.errors import NotFoundError, ValidationError
from connector.models import Delivery, DeliveryAttempt, EventPayload, WebhookEndpoint
from connector.runtime import Runtime
from connector.web.problems import problem
from webhooks.outbound import delivery as deliveries
from webhooks.outbound import endpoints

logger = logging.getLogger(__name__)

bp = Blueprint("webhook_api", __name__)

MAX_GRACE_SECONDS = 7 * 24 * 3600
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
STATUSES = (deliveries.PENDING, deliveries.SUCCEEDED, deliveries.FAILED)
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+){1,3}")
_CURSOR_PREFIX = "d:"

# --- request bodies -------------------------------------------------------------------------------------


def _check_url_text(value: str) -> str:
    """Refuse what the address check cannot judge: control characters, unencodable text, invalid host names."""
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise ValueError("url must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("url is not valid Unicode text") from None
    try:
        host = urlsplit(value.strip()).hostname
    except ValueError:
        return value  # the endpoint service reports malformed URLs itself
    if host:
        try:
            host.encode("idna")
        except UnicodeError:
            raise ValueError(f"url host {host!r} is not a valid host name") from None
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EndpointCreate(_Body):
    url: str = Field(max_length=endpoints.MAX_URL_LENGTH)
    event_types: list[str] = Field(
        default_factory=lambda: ["*"],
        max_length=endpoints.MAX_EVENT_TYPES,
        description=f"At most {endpoints.MAX_EVENT_TYPES}, each at most {endpoints.MAX_EVENT_TYPE_LENGTH} characters.",
    )

    _url = field_validator("url")(_check_url_text)


class EndpointUpdate(_Body):
    url: str | None = Field(default=None, max_length=endpoints.MAX_URL_LENGTH)
    event_types: list[str] | None = Field(default=None, max_length=endpoints.MAX_EVENT_TYPES)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url_text(value)


class RotateSecret(_Body):
    grace_seconds: int | None = Field(default=None, ge=0, le=MAX_GRACE_SECONDS)


BodyT = TypeVar("BodyT", bound=_Body)


class _UnsupportedMediaTypeError(Exception):
    """The request carries a body that is not JSON (answered with 415)."""


def _invalid(message: str, errors: list[dict[str, str]]) -> ValidationError:
    return ValidationError(message, code="invalid_request", details={"errors": errors})


def _parse(model: type[BodyT], *, optional: bool = False) -> BodyT:
    """The request body as `model`; 415 when it is not JSON, 422 with field errors when it does not fit."""
    raw = request.get_data(cache=True)
    if optional and not raw:
        return model()
    if not request.is_json:
        raise _UnsupportedMediaTypeError()
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise _invalid(
            "the request body is not valid JSON", [{"field": "", "message": "invalid JSON"}]
        ) from None
    if not isinstance(data, dict):
        raise _invalid(
            "the request body must be a JSON object",
            [{"field": "", "message": f"expected an object, got {type(data).__name__}"}],
        )
    try:
        return model.model_validate(data)
    except SchemaError as exc:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise _invalid("the request body is invalid", errors) from None


# --- authentication and errors --------------------------------------------------------------------------


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["storelink"]
    return rt


def _unauthorized(detail: str) -> Response:
    response = problem(401, "unauthorized", detail, title="Unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="storelink"'
    return response


@bp.before_request
def _authenticate() -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        return _unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    if scheme.lower() != "bearer" or not key.strip():
        return _unauthorized("the Authorization header must be 'Bearer <key>'")
    with _runtime().db.session() as session:
        client = clients.authenticate(session, key.strip())
        client_id = client.id if client is not None else None
    if client_id is None:
        return _unauthorized("the API key is not valid")
    g.platform_client_id = client_id
    return None


def _client_id() -> int:
    client_id: int = g.platform_client_id
    return client_id


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Response:
    errors = exc.details.get("errors")
    if not isinstance(errors, list):
        field = exc.details.get("field")
        errors = [{"field": str(field) if field else "", "message": exc.message}]
    return problem(422, "invalid_request", exc.message, title="Invalid request", errors=errors)


@bp.errorhandler(endpoints.EndpointLimitError)
def _endpoint_limit(exc: endpoints.EndpointLimitError) -> Response:
    return problem(409, exc.code, exc.message, title="Endpoint limit reached", limit=exc.limit)


@bp.errorhandler(_UnsupportedMediaTypeError)
def _unsupported(_exc: _UnsupportedMediaTypeError) -> Response:
    return problem(
        415,
        "unsupported_media_type",
        "the request body must be JSON (Content-Type: application/json)",
        title="Unsupported media type",
    )


# --- representations ------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _endpoint(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": _iso(endpoint.created_at),
        "updated_at": _iso(endpoint.updated_at),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def _delivery(delivery: Delivery, event_type: str, attempts: int) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.payload_id,
        "event_type": event_type,
        "status": delivery.status,
        "attempts": attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "created_at": _iso(delivery.created_at),
        "updated_at": _iso(delivery.updated_at),
    }


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# --- routes ---------------------------------------------------------------------------------------------


@bp.post("/webhook-endpoints")
@doc(
    summary="Create a webhook endpoint",
    tags=["webhooks"],
    body=EndpointCreate,
    responses={201: WebhookEndpointOut, 409: None},
    codes={409: (endpoints.EndpointLimitError.code,), 422: ("invalid_request",)},
    operation_id="createWebhookEndpoint",
)
def create_endpoint() -> Response:
    body = _parse(EndpointCreate)
    rt = _runtime()
    with rt.db.session() as session:
        created = endpoints.create_endpoint(
            session,
            rt.secrets,
            url=body.url,
            event_types=body.event_types,
            platform_client_id=_client_id(),
            allow_private=rt.settings.webhook_allow_private_urls,
        )
        result = _endpoint(created.endpoint, created.secret)
    response = _json(result, 201)
    response.headers["Location"] = url_for(".get_endpoint", endpoint_id=result["id"])
    return response


@bp.get("/webhook-endpoints")
@doc(
    summary="List webhook endpoints",
    tags=["webhooks"],
    responses={200: WebhookEndpointList},
    operation_id="listWebhookEndpoints",
)
def list_endpoints() -> Response:
    with _runtime().db.session() as session:
        rows = endpoints.list_endpoints(session, platform_client_id=_client_id())
        return _json({"data": [_endpoint(endpoint) for endpoint in rows]})


@bp.get("/webhook-endpoints/<int:endpoint_id>")
@doc(
    summary="Get a webhook endpoint",
    tags=["webhooks"],
    responses={200: WebhookEndpointOut, 404: None},
    operation_id="getWebhookEndpoint",
)
def get_endpoint(endpoint_id: int) -> Response:
    with _runtime().db.session() as session:
        endpoint = endpoints.get_endpoint(session, endpoint_id, platform_client_id=_client_id())
        return _json(_endpoint(endpoint))


@bp.patch("/webhook-endpoints/<int:endpoint_id>")
@doc(
    summary="Update a webhook endpoint",
    tags=["webhooks"],
    body=EndpointUpdate,
    responses={200: WebhookEndpointOut, 404: None},
    operation_id="updateWebhookEndpoint",
)
def update_endpoint(endpoint_id: int) -> Response:
    body = _parse(EndpointUpdate)
    rt = _runtime()
    with rt.db.session() as session:
        endpoint = endpoints.update_endpoint(
            session,
            endpoint_id,
            url=body.url,
            event_types=body.event_types,
            enabled=body.enabled,
            allow_private=rt.settings.webhook_allow_private_urls,
            platform_client_id=_client_id(),
        )
        return _json(_endpoint(endpoint))


@bp.delete("/webhook-endpoints/<int:endpoint_id>")
@doc(
    summary="Delete a webhook endpoint",
    tags=["webhooks"],
    responses={204: None, 404: None},
    operation_id="deleteWebhookEndpoint",
)
def delete_endpoint(endpoint_id: int) -> Response:
    with _runtime().db.session() as session:
        endpoints.delete_endpoint(session, endpoint_id, platform_client_id=_client_id())
    return Response(status=204)


@bp.post("/webhook-endpoints/<int:endpoint_id>/rotate-secret")
@doc(
    summary="Rotate an endpoint's signing secret",
    tags=["webhooks"],
    body=RotateSecret,
    body_optional=True,
    responses={200: WebhookEndpointOut, 404: None},
    operation_id="rotateWebhookEndpointSecret",
)
def rotate_secret(endpoint_id: int) -> Response:
    body = _parse(RotateSecret, optional=True)
    grace = endpoints.DEFAULT_GRACE if body.grace_seconds is None else timedelta(seconds=body.grace_seconds)
    rt = _runtime()
    with rt.db.session() as session:
        rotated = endpoints.rotate_secret(
            session, rt.secrets, endpoint_id, grace=grace, platform_client_id=_client_id()
        )
        result = _endpoint(rotated.endpoint, rotated.secret)
        result["previous_secret_expires_at"] = _iso(rotated.endpoint.previous_secret_expires_at)
    return _json(result)


def _encode_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{delivery_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(cursor)
        value = int(text[len(_CURSOR_PREFIX) :])
        if value < 1:
            raise ValueError(cursor)
        return value
    except (ValueError, binascii.Error):
        raise _invalid(
            "cursor is not valid", [{"field": "cursor", "message": "not a cursor this API returned"}]
        ) from None


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _invalid(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            [{"field": "limit", "message": f"must be an integer from 1 to {MAX_LIMIT}"}],
        )
    return int(raw)


@bp.get("/webhook-endpoints/<int:endpoint_id>/deliveries")
@doc(
    summary="List an endpoint's deliveries",
    tags=["webhooks"],
    query=DeliveriesQuery,
    responses={200: DeliveryPage, 404: None},
    operation_id="listWebhookDeliveries",
)
def list_deliveries(endpoint_id: int) -> Response:
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise _invalid(
            f"status must be one of {', '.join(STATUSES)}",
            [{"field": "status", "message": f"must be one of {', '.join(STATUSES)}"}],
        )
    event_type = request.args.get("event_type") or None
    if event_type is not None and not _EVENT_TYPE.fullmatch(event_type):
        raise _invalid(
            "event_type must be a dotted event type such as order.confirmed",
            [{"field": "event_type", "message": "must be a dotted event type such as order.confirmed"}],
        )
    limit = _limit(request.args.get("limit"))
    raw_cursor = request.args.get("cursor")
    before = _decode_cursor(raw_cursor) if raw_cursor else None
    with _runtime().db.session() as session:
        endpoint = endpoints.get_endpoint(session, endpoint_id, platform_client_id=_client_id())
        page = _deliveries_page(
            session, endpoint.id, status=status, event_type=event_type, before=before, limit=limit
        )
    return _json(page)


def _deliveries_page(
    session: Session,
    endpoint_id: int,
    *,
    status: str | None,
    event_type: str | None,
    before: int | None,
    limit: int,
) -> dict[str, Any]:
    """Deliveries of the endpoint, newest first, `limit` at a time; the cursor is the last id returned."""
    attempts = (
        select(func.count(DeliveryAttempt.id))
        .where(DeliveryAttempt.delivery_id == Delivery.id)
        .correlate(Delivery)
        .scalar_subquery()
    )
    query = (
        select(Delivery, EventPayload.type, attempts)
        .join(EventPayload, EventPayload.id == Delivery.payload_id)
        .where(Delivery.endpoint_id == endpoint_id)
        .order_by(Delivery.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(Delivery.status == status)
    if event_type is not None:
        query = query.where(EventPayload.type == event_type)
    if before is not None:
        query = query.where(Delivery.id < before)
    rows = session.execute(query).all()
    data = [_delivery(row[0], row[1], int(row[2] or 0)) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return {"data": data, "next_cursor": next_cursor}


@bp.post("/webhook-endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/replay")
@doc(
    summary="Replay a failed delivery",
    tags=["webhooks"],
    responses={202: Replayed, 404: None, 409: None},
    operation_id="replayWebhookDelivery",
)
def replay_delivery(endpoint_id: int, delivery_id: int) -> Response:
    with _runtime().db.session() as session:
        endpoint = endpoints.get_endpoint(session, endpoint_id, platform_client_id=_client_id())
        found = session.get(Delivery, delivery_id)
        if found is None or found.endpoint_id != endpoint.id:
            raise NotFoundError(f"delivery {delivery_id} not found", code="delivery_not_found")
        if found.status != deliveries.FAILED:
            return problem(
                409,
                "delivery_not_failed",
                f"delivery {delivery_id} is {found.status}; only failed deliveries can be replayed",
                title="Delivery not failed",
            )
        replayed = deliveries.replay(session, [delivery_id])
    return _json({"replayed": replayed}, 202)


@bp.post("/webhook-endpoints/<int:endpoint_id>/replay-failed")
@doc(
    summary="Replay an endpoint's failed deliveries",
    tags=["webhooks"],
    responses={202: Replayed, 404: None},
    operation_id="replayFailedWebhookDeliveries",
)
def replay_failed(endpoint_id: int) -> Response:
    with _runtime().db.session() as session:
        endpoint = endpoints.get_endpoint(session, endpoint_id, platform_client_id=_client_id())
        replayed = deliveries.replay_failed(session, endpoint_id=endpoint.id)
    return _json({"replayed": replayed}, 202)


def init_app(app: Flask) -> None:
    """Mount the webhook endpoint routes under `/v1`."""
    app.register_blueprint(bp, url_prefix="/v1")
