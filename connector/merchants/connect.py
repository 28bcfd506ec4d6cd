"""Connecting a store with keys the caller hands over: checked, stored, notifications on, first sync queued.

`connect` runs in this order, so that keys the store refuses leave nothing behind:

1. the kind's `ConnectFlow` (declared by its adapter, found through the registry) checks the keys with the
   store, finds what the store says about the seller and validates the adapter's connect settings: an
   `AuthError` here is the caller's clear "bad key" error, and any error leaves nothing written;
2. the merchant is created (credentials encrypted), linked to a platform client when one is named;
3. the store's notifications are pointed at `{public_url}/webhooks/<kind>/<merchant id>` (skipped with a
   warning when no public URL is configured; a failure here is a warning too: the scheduled polls cover it);
4. the first full sync is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.catalog import syncs
from connector.domain import registry
from connector.domain.errors import NotFoundError, StorelinkError, ValidationError
from connector.domain.ports import ConnectFlow, HasConnectFlow, RegistersWebhooks, StoreAdapter
from connector.infra import queue, runtime
from connector.infra.models import PlatformClient
from connector.infra.store_adapters import http_options
from connector.merchants.records import create_merchant

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connected:
    """The outcome of `connect`: the merchant, what the store said about it (`details`), and warnings."""

    merchant_id: int
    store_ref: str
    details: dict[str, Any]
    event_types: list[str]
    sync_run_id: int | None
    summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def find_platform_client(session: Session, ref: str | int) -> PlatformClient:
    """A platform client by id or by name."""
    client: PlatformClient | None
    if isinstance(ref, int) or str(ref).isdigit():
        client = session.get(PlatformClient, int(ref))
    else:
        client = session.scalars(select(PlatformClient).where(PlatformClient.name == ref)).first()
    if client is None:
        raise NotFoundError(f"no platform client {ref!r}", code="client_not_found")
    return client


def callback_url(public_url: str, kind: str, merchant_id: int) -> str:
    return f"{public_url.rstrip('/')}/webhooks/{kind}/{merchant_id}"


def connect_flow(kind: str) -> ConnectFlow | None:
    """The connect flow of `kind`'s adapter, or None when its stores are not connected with keys."""
    cls = registry.adapter_class(kind)
    return cast(HasConnectFlow, cls).connect_flow if hasattr(cls, "connect_flow") else None


def require_flow(kind: str) -> ConnectFlow:
    flow = connect_flow(kind)
    if flow is None:
        raise ValidationError(f"{kind} stores are not connected with keys", code="unsupported_kind")
    return flow


def flow_settings(rt: runtime.Runtime, flow: ConnectFlow) -> dict[str, str]:
    """The server settings a flow declares, by name, as configured (empty ones left out)."""
    values = {setting.name: rt.settings.store_setting(setting.env) for setting in flow.settings}
    return {name: value for name, value in values.items() if value}


def _subscribe(
    kind: str, flow: ConnectFlow, merchant_id: int, adapter: Callable[[], StoreAdapter], base: str
) -> tuple[list[str], list[str]]:
    """(topics subscribed, warnings): the store's notifications pointed at Storelink, or why not."""
    if not base:
        return [], [flow.unsubscribed_warning(None)]
    try:
        store = adapter()
        if not isinstance(store, RegistersWebhooks):
            return [], []
        return list(store.register_webhooks(callback_url(base, kind, merchant_id))), []
    except StorelinkError as exc:
        return [], [flow.unsubscribed_warning(exc.message)]


def connect(
    rt: runtime.Runtime,
    kind: str,
    *,
    name: str,
    fields: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    credentials: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
    platform_client: str | int | None = None,
    inventory_buffer: int = 0,
    first_sync: bool = True,
    public_url: str | None = None,
) -> Connected:
    """Connect a store of `kind` (see the module docstring); raises AuthError for keys the store refuses and
    ValidationError / PermanentError for anything else that stops the connection, having written nothing.
    `fields` are the kind's connect fields; `credentials` are stored with the keys the flow settles."""
    flow = require_flow(kind)
    http = http_options(rt.settings)

    def adapter_for(cfg: Mapping[str, Any], creds: Mapping[str, str]) -> StoreAdapter:
        return registry.create_adapter(kind, cfg, creds, http)

    plan = flow.connect(fields, config or {}, credentials or {}, settings or {}, adapter_for)
    log: dict[str, Any] = {"kind": kind}
    with rt.db.session() as session:
        owner = find_platform_client(session, platform_client).id if platform_client is not None else None
        merchant = create_merchant(
            session,
            rt.secrets,
            kind=kind,
            name=name,
            config=plan.config,
            credentials=plan.credentials,
            inventory_buffer=inventory_buffer,
            platform_client_id=owner,
        )
        merchant_id, store_ref, stored_config = merchant.id, merchant.store_ref, dict(merchant.config)
    log["merchant_id"] = merchant_id

    warnings = list(plan.warnings)
    warnings += flow.connected_warnings(
        stored_config, queue.attempt_timeout(rt.settings), rt.settings.http_timeout_seconds
    )
    base = (public_url if public_url is not None else rt.settings.public_url).strip()
    event_types, refused = _subscribe(
        kind, flow, merchant_id, lambda: adapter_for(stored_config, plan.credentials), base
    )
    warnings += refused
    for warning in warnings:
        logger.warning("connect: %s", warning, extra=log)

    run_id: int | None = None
    if first_sync:
        run_id = syncs.request_sync(rt, merchant_id).id
    logger.info(
        "store connected", extra={**log, **plan.details, "event_types": len(event_types), "run_id": run_id}
    )
    return Connected(merchant_id, store_ref, dict(plan.details), event_types, run_id, plan.summary, warnings)
