"""Platform API for webhook endpoints: the `/v1/webhook-endpoints` routes a platform client calls with its key.

Every route authenticates the bearer key and parses bodies, queries and cursors with the shared `/v1`
conventions (connector.api.common), and scopes every query to that client, so another client's endpoint or
delivery is a 404. Bodies are checked with strict pydantic models; bad input is a 4xx problem document (code
`invalid_request` with field errors, also for a body that is not valid JSON), and a failed request writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, jsonify, url_for
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.api.common import (
    api_runtime,
    authenticate,
    decode_id_cursor,
    encode_cursor,
    invalid_request_problem,
    parse_body,
    parse_query,
    require_client,
)
from connector.api.openapi import doc
from connector.api.webhook_models import (
    DeliveriesQuery,
    DeliveryPage,
    Replayed,
    WebhookEndpointList,
    WebhookEndpointOut,
)
from connector.domain.errors import NotFoundError, ValidationError
from connector.domain.timestamps import iso
from connector.infra.models import Delivery, DeliveryAttempt, EventPayload, WebhookEndpoint
from connector.web.problems import problem
from webhooks.outbound import delivery as deliveries
from webhooks.outbound import endpoints

logger = logging.getLogger(__name__)

bp = Blueprint("webhook_api", __name__)
bp.before_request(require_client)
bp.register_error_handler(ValidationError, invalid_request_problem)

MAX_GRACE_SECONDS = 7 * 24 * 3600
_CURSOR_KIND = "deliveries"

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


def _client_id() -> int:
    return authenticate().id


@bp.errorhandler(endpoints.EndpointLimitError)
def _endpoint_limit(exc: endpoints.EndpointLimitError) -> Response:
    return problem(409, exc.code, exc.message, title="Endpoint limit reached", limit=exc.limit)


# --- representations ------------------------------------------------------------------------------------


def _endpoint(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
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
        "next_attempt_at": iso(delivery.next_attempt_at),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
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
    body = parse_body(EndpointCreate, malformed_is_invalid=True)
    rt = api_runtime()
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
    with api_runtime().db.session() as session:
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
    with api_runtime().db.session() as session:
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
    body = parse_body(EndpointUpdate, malformed_is_invalid=True)
    rt = api_runtime()
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
    with api_runtime().db.session() as session:
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
    body = parse_body(RotateSecret, optional=True, malformed_is_invalid=True)
    grace = endpoints.DEFAULT_GRACE if body.grace_seconds is None else timedelta(seconds=body.grace_seconds)
    rt = api_runtime()
    with rt.db.session() as session:
        rotated = endpoints.rotate_secret(
            session, rt.secrets, endpoint_id, grace=grace, platform_client_id=_client_id()
        )
        result = _endpoint(rotated.endpoint, rotated.secret)
        result["previous_secret_expires_at"] = iso(rotated.endpoint.previous_secret_expires_at)
    return _json(result)


@bp.get("/webhook-endpoints/<int:endpoint_id>/deliveries")
@doc(
    summary="List an endpoint's deliveries",
    tags=["webhooks"],
    query=DeliveriesQuery,
    responses={200: DeliveryPage, 404: None},
    operation_id="listWebhookDeliveries",
)
def list_deliveries(endpoint_id: int) -> Response:
    query = parse_query(DeliveriesQuery)
    before = decode_id_cursor(_CURSOR_KIND, query.cursor)
    with api_runtime().db.session() as session:
        endpoint = endpoints.get_endpoint(session, endpoint_id, platform_client_id=_client_id())
        page = _deliveries_page(
            session,
            endpoint.id,
            status=query.status,
            event_type=query.event_type,
            before=before,
            limit=query.limit,
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
    next_cursor = encode_cursor(_CURSOR_KIND, [rows[limit - 1][0].id]) if len(rows) > limit else None
    return {"data": data, "next_cursor": next_cursor}


@bp.post("/webhook-endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/replay")
@doc(
    summary="Replay a failed delivery",
    tags=["webhooks"],
    responses={202: Replayed, 404: None, 409: None},
    operation_id="replayWebhookDelivery",
)
def replay_delivery(endpoint_id: int, delivery_id: int) -> Response:
    with api_runtime().db.session() as session:
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
    with api_runtime().db.session() as session:
        endpoint = endpoints.get_endpoint(session, endpoint_id, platform_client_id=_client_id())
        replayed = deliveries.replay_failed(session, endpoint_id=endpoint.id)
    return _json({"replayed": replayed}, 202)


def init_app(app: Flask) -> None:
    """Mount the webhook endpoint routes under `/v1`."""
    app.register_blueprint(bp, url_prefix="/v1")
