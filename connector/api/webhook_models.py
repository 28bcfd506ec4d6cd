"""Response shapes of the `/v1/webhook-endpoints` routes, as the OpenAPI document describes them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from connector.api.common import Query


class WebhookEndpointOut(BaseModel):
    """A platform webhook endpoint. `secret` appears only when it is created or its secret rotated."""

    id: int
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime | None
    updated_at: datetime | None
    secret: str | None = Field(default=None, description="The signing secret; shown once.")
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="After a rotation: until when the previous secret still signs."
    )


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointOut]


class DeliveryOut(BaseModel):
    """One event sent (or to be sent) to an endpoint."""

    id: int
    event_id: str
    event_type: str
    status: str = Field(description="pending, succeeded or failed.")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class DeliveriesQuery(Query):
    """Deliveries of an endpoint, newest first."""

    status: str | None = Field(default=None, pattern=r"^(pending|succeeded|failed)$")
    event_type: str | None = Field(default=None, description="A dotted event type such as order.confirmed.")
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page.")


class Replayed(BaseModel):
    replayed: list[int] = Field(description="Ids of the deliveries queued again.")
