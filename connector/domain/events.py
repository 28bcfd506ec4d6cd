"""Store events: what an inbound webhook or a poll tells the core, already parsed by an adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class StoreEventKind(StrEnum):
    PRODUCT_CHANGED = "product_changed"
    PRODUCT_DELETED = "product_deleted"
    INVENTORY_CHANGED = "inventory_changed"
    ORDER_FULFILLED = "order_fulfilled"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REFUNDED = "order_refunded"
    APP_UNINSTALLED = "app_uninstalled"


@dataclass(frozen=True, slots=True)
class StoreEvent:
    kind: StoreEventKind
    external_id: str
    occurred_at: datetime | None = None
    data: dict[str, object] = field(default_factory=dict)
