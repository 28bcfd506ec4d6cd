"""Response shapes of the `/v1/webhook-endpoints` routes, as the OpenAPI document describes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from connector.api.common import PageQuery


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


class DeliveriesQuery(PageQuery):
    """Deliveries of an endpoint, newest first; an empty parameter counts as absent."""

    status: Literal["pending", "succeeded", "failed"] | None = Field(
        default=None, description="pending, succeeded or failed."
    )
    event_type: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){1,3}$",
        description="A dotted event type such as order.confirmed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value != ""}
        return data


class Replayed(BaseModel):
    replayed: list[int] = Field(description="Ids of the deliveries queued again.")
