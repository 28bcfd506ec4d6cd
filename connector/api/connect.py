"""Connecting stores through the Platform API: `POST /v1/merchants/walmart` connects a Walmart seller with its
API keys for the calling platform client.

The keys are checked with Walmart at once (a token request): keys Walmart refuses are a 422
`store_credentials_refused` and nothing is written. The rest is `connector.walmart_connect.connect`: the
Multichannel channel found (or the seller recorded as not enrolled), the merchant stored with its keys
encrypted and linked to the client, notifications subscribed at `PUBLIC_URL`, the first full sync queued.
Which Walmart address is called is the server's choice (`environment`, or the `WALMART_BASE_URL` setting),
never the caller's: a request cannot point Storelink, with a seller's secret, at an address of its choosing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connector import walmart_connect
from connector.api.common import (
    ApiError,
    api_runtime,
    authenticate,
    json_response,
    parse_body,
    require_client,
)
from connector.api.openapi import doc
from connector.errors import AuthError
from connector.models import Merchant

logger = logging.getLogger(__name__)

bp = Blueprint("api_connect", __name__)
bp.before_request(require_client)

TAG = "merchants"


class WalmartConnect(BaseModel):
    """A Walmart seller's API keys (Developer Portal: client id and client secret) and how it sells."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Merchant name, unique.")
    client_id: str = Field(min_length=1, max_length=200, pattern=r"^[!-~]+$", description="Visible ASCII.")
    client_secret: SecretStr = Field(min_length=1, max_length=500)
    seller_id: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    environment: Literal["production", "sandbox"] = "production"
    mcs_enrolled: bool | None = Field(
        default=None,
        description="Whether the seller is on Walmart Multichannel Solutions; absent: found out from Walmart.",
    )
    location: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$", description="Ship node id."
    )
    inventory_buffer: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("client_secret")
    @classmethod
    def _visible_ascii(cls, value: SecretStr) -> SecretStr:
        if not all("!" <= ch <= "~" for ch in value.get_secret_value()):
            raise ValueError("must be visible ASCII characters (as Walmart issues them)")
        return value


class ConnectedMerchant(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    kind: str
    store_ref: str
    status: str
    mcs_enrolled: bool
    order_channel_id: str | None
    notification_events: list[str]
    sync_run_id: int | None
    warnings: list[str]
    created_at: datetime


@bp.post("/merchants/walmart")
@doc(
    summary="Connect a Walmart seller",
    tags=[TAG],
    body=WalmartConnect,
    responses={201: ConnectedMerchant, 422: None, 503: None},
    operation_id="connectWalmartSeller",
)
def connect_walmart() -> Response:
    """Check the keys with Walmart, store the seller as a merchant of the calling client, start syncing."""
    client = authenticate()
    body = parse_body(WalmartConnect)
    rt = api_runtime()
    config: dict[str, object] = {"environment": body.environment}
    if body.mcs_enrolled is not None:
        config["mcs_enrolled"] = body.mcs_enrolled
    if body.location is not None:
        config["location"] = body.location
    try:
        connected = walmart_connect.connect(
            rt,
            name=body.name.strip(),
            client_id=body.client_id,
            client_secret=body.client_secret.get_secret_value(),
            seller_id=body.seller_id,
            base_url=rt.settings.walmart_base_url or None,
            config=config,
            platform_client=client.id,
            inventory_buffer=body.inventory_buffer,
            public_url=rt.settings.public_url,
        )
    except AuthError as exc:
        raise ApiError(422, "store_credentials_refused", f"Walmart refused the keys: {exc.message}") from None
    with rt.db.session() as session:
        merchant = session.get(Merchant, connected.merchant_id)
        assert merchant is not None
        answer = ConnectedMerchant(
            id=merchant.id,
            name=merchant.name,
            kind=merchant.kind,
            store_ref=merchant.store_ref,
            status=merchant.status,
            mcs_enrolled=connected.mcs_enrolled,
            order_channel_id=connected.order_channel_id,
            notification_events=list(connected.event_types),
            sync_run_id=connected.sync_run_id,
            warnings=list(connected.warnings),
            created_at=merchant.created_at,
        )
    logger.info(
        "walmart seller connected through the API",
        extra={
            "merchant_id": answer.id,
            "platform_client_id": client.id,
            "mcs_enrolled": answer.mcs_enrolled,
        },
    )
    return json_response(answer, 201)
