"""Connecting stores through the Platform API: `POST /v1/merchants` (with `kind`) connects a store with its
API keys for the calling platform client; `POST /v1/merchants/<kind>` is the same with the kind in the path.

The body is validated with the kind's connect schema (declared by its adapter's connect flow). The keys are
checked with the store at once: keys the store refuses are a 422 `store_credentials_refused` and nothing is
written. The rest is `connector.merchants.connect.connect`: what the store says about the seller found, the merchant
stored with its keys encrypted and linked to the client, notifications subscribed at `PUBLIC_URL`, the first
full sync queued. Which store address is called is the server's choice (the settings the adapter declares),
never the caller's: a request cannot point Storelink, with a seller's secret, at an address of its choosing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connector.api.common import (
    ApiError,
    api_runtime,
    authenticate,
    json_response,
    parse_body,
    require_client,
)
from connector.api.openapi import doc
from connector.domain import registry
from connector.domain.errors import AuthError, ValidationError
from connector.domain.ports import ConnectFields, ConnectFlow
from connector.infra.models import Merchant
from connector.merchants import connect

logger = logging.getLogger(__name__)

bp = Blueprint("api_connect", __name__)
bp.before_request(require_client)

TAG = "merchants"


class ConnectRequest(BaseModel):
    """`kind` names the store; the other fields are that kind's connect fields (its adapter's schema)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(min_length=1, max_length=50, description="Store kind with a connect flow.")


class ConnectedMerchant(BaseModel):
    """The merchant made, and what the store said about it (its kind's connect details, e.g. whether it
    takes orders, as further fields)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: int
    name: str
    kind: str
    store_ref: str
    status: str
    notification_events: list[str]
    sync_run_id: int | None
    warnings: list[str]
    created_at: datetime


_BODIES: dict[str, type[BaseModel]] = {}


def _flow(kind: str, status: int) -> ConnectFlow:
    try:
        flow = connect.connect_flow(kind)
    except ValidationError:
        flow = None
    if flow is None:
        kinds = [k for k in registry.kinds() if connect.connect_flow(k) is not None]
        raise ApiError(
            status,
            "unknown_kind",
            f"no store kind {kind!r} connects with keys; kinds: {', '.join(kinds) or 'none'}",
        )
    return flow


def _with_kind(kind: str, schema: type[ConnectFields]) -> type[BaseModel]:
    """The kind's connect schema with `kind` added (the body of `POST /v1/merchants`)."""
    if kind not in _BODIES:

        class WithKind(schema):  # type: ignore[valid-type,misc]
            kind: str

        WithKind.__name__ = f"{schema.__name__}WithKind"
        _BODIES[kind] = WithKind
    return _BODIES[kind]


def _connect(kind: str, flow: ConnectFlow, body: BaseModel) -> Response:
    client = authenticate()
    rt = api_runtime()
    values: dict[str, Any] = {
        key: value.get_secret_value() if isinstance(value, SecretStr) else value
        for key, value in body
        if key not in ("kind", "name", "inventory_buffer")
    }
    try:
        connected = connect.connect(
            rt,
            kind,
            name=str(getattr(body, "name", "")).strip(),
            fields=values,
            settings=connect.flow_settings(rt, flow),
            platform_client=client.id,
            inventory_buffer=int(getattr(body, "inventory_buffer", 0)),
            public_url=rt.settings.public_url,
        )
    except AuthError as exc:
        raise ApiError(
            422, "store_credentials_refused", f"{flow.store_name} refused the keys: {exc.message}"
        ) from None
    with rt.db.session() as session:
        merchant = session.get(Merchant, connected.merchant_id)
        assert merchant is not None
        answer = ConnectedMerchant(
            id=merchant.id,
            name=merchant.name,
            kind=merchant.kind,
            store_ref=merchant.store_ref,
            status=merchant.status,
            notification_events=list(connected.event_types),
            sync_run_id=connected.sync_run_id,
            warnings=list(connected.warnings),
            created_at=merchant.created_at,
            **connected.details,
        )
    logger.info(
        "store connected through the API",
        extra={"merchant_id": answer.id, "kind": kind, "platform_client_id": client.id, **connected.details},
    )
    return json_response(answer, 201)


@bp.post("/merchants")
@doc(
    summary="Connect a store with its keys",
    tags=[TAG],
    body=ConnectRequest,
    responses={201: ConnectedMerchant, 422: None, 503: None},
    operation_id="connectMerchant",
)
def connect_store() -> Response:
    """Check the keys with the store of `kind`, store it as a merchant of the calling client, start syncing."""
    authenticate()
    head = parse_body(ConnectRequest)
    flow = _flow(head.kind, 422)
    return _connect(head.kind, flow, parse_body(_with_kind(head.kind, flow.connect_schema)))


@bp.post("/merchants/<kind>")
@doc(
    summary="Connect a store of the kind in the path with its keys",
    tags=[TAG],
    body=ConnectFields,
    responses={201: ConnectedMerchant, 404: None, 422: None, 503: None},
    operation_id="connectMerchantOfKind",
)
def connect_kind(kind: str) -> Response:
    """`POST /v1/merchants` with the kind in the path (the body is the kind's connect fields)."""
    authenticate()
    flow = _flow(kind, 404)
    return _connect(kind, flow, parse_body(flow.connect_schema))
