"""Connecting a Walmart Marketplace seller: keys checked, Multichannel found, merchant stored, notifications on.

`connect` runs in this order, so that keys Walmart refuses leave nothing behind:

1. the config is validated and a token is requested with the client id and secret (`check_connection`): an
   `AuthError` here is the caller's clear "bad key" error and nothing is written;
2. Multichannel Solutions: unless the caller said whether the seller is enrolled, the sales channel is looked
   up (`discover_channel`); Walmart refusing the channel call for a seller not onboarded means
   `mcs_enrolled: false` (platform sales then reduce Walmart's stock), a channel found means
   `mcs_enrolled: true` with its `order_channel_id`; an enrolled seller whose channel cannot be told apart is
   an error naming the fix (`order_channel_id` / `order_channel_name`), and nothing is written;
3. the merchant is created (credentials encrypted), linked to a platform client when one is named;
4. the notifications subscription is pointed at `{public_url}/webhooks/walmart/<merchant id>` (skipped with a
   warning when no public URL is configured; a failure here is a warning too: the scheduled polls cover it);
5. the first full catalog sync is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector import order_push, registry, runtime, syncs
from connector.errors import NotFoundError, PermanentError, StorelinkError, ValidationError
from connector.merchants import create_merchant, http_options
from connector.models import PlatformClient

logger = logging.getLogger(__name__)

KIND: Final = "walmart"
_NOT_ENROLLED_CODES: Final = ("INVALID_MCS_REQUEST",)


@runtime_checkable
class WalmartConnection(Protocol):
    """What connecting needs from the Walmart adapter."""

    config: dict[str, Any]

    def check_connection(self) -> None: ...

    def discover_channel(self) -> str: ...

    def register_webhooks(self, callback_url: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Connected:
    """The outcome of `connect`."""

    merchant_id: int
    store_ref: str
    mcs_enrolled: bool
    order_channel_id: str | None
    event_types: list[str]
    sync_run_id: int | None
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


def callback_url(public_url: str, merchant_id: int) -> str:
    return f"{public_url.rstrip('/')}/webhooks/{KIND}/{merchant_id}"


def _adapter(
    rt: runtime.Runtime, config: Mapping[str, Any], credentials: Mapping[str, str]
) -> WalmartConnection:
    adapter = registry.create_adapter(KIND, config, credentials, http_options(rt.settings))
    if not isinstance(adapter, WalmartConnection):
        raise PermanentError("the installed walmart adapter cannot connect sellers", code="unsupported")
    return adapter


def _not_enrolled(exc: StorelinkError) -> bool:
    codes = exc.details.get("codes")
    named = [str(code).upper() for code in codes] if isinstance(codes, list) else []
    return exc.code == "forbidden_request" or any(code in named for code in _NOT_ENROLLED_CODES)


def _multichannel(
    rt: runtime.Runtime, config: dict[str, Any], credentials: Mapping[str, str]
) -> tuple[bool, str | None]:
    """(enrolled, channel id) of the seller: as `config` says (`order_channel_id`, `mcs_enrolled`), else as
    Walmart answers the channel lookup."""
    if config.get("order_channel_id"):
        return True, str(config["order_channel_id"])
    said = config.get("mcs_enrolled")
    if said is False:
        return False, None
    probe = _adapter(rt, {**config, "mcs_enrolled": True}, credentials)
    try:
        return True, probe.discover_channel()
    except PermanentError as exc:
        if exc.code == "no_order_channel":
            raise PermanentError(
                f"{exc.message}; or connect with mcs_enrolled false (--no-mcs) so that platform sales "
                "reduce Walmart stock instead",
                code=exc.code,
                details=exc.details,
            ) from None
        if said is None and _not_enrolled(exc):
            logger.info("walmart seller not on Multichannel Solutions", extra={"code": exc.code})
            return False, None
        raise


def connect(
    rt: runtime.Runtime,
    *,
    name: str,
    client_id: str,
    client_secret: str,
    seller_id: str | None = None,
    base_url: str | None = None,
    config: Mapping[str, Any] | None = None,
    extra_credentials: Mapping[str, str] | None = None,
    platform_client: str | int | None = None,
    inventory_buffer: int = 0,
    first_sync: bool = True,
    public_url: str | None = None,
) -> Connected:
    """Connect a Walmart seller (see the module docstring); raises AuthError for keys Walmart refuses and
    ValidationError / PermanentError for anything else that stops the connection, having written nothing.
    `extra_credentials` are stored with the keys (`webhook_username` / `webhook_password` for BASIC_AUTH
    notifications)."""
    if not client_id.strip() or not client_secret.strip():
        raise ValidationError(
            "a Walmart client id and client secret are required", code="missing_credentials"
        )
    wanted: dict[str, Any] = {**(config or {}), "client_id": client_id.strip()}
    if seller_id:
        wanted["seller_id"] = seller_id.strip()
    if base_url:
        wanted["base_url"] = base_url
    normalized = registry.adapter_class(KIND).validate_config(wanted)
    credentials = {
        **(extra_credentials or {}),
        "client_id": client_id.strip(),
        "client_secret": client_secret,
    }
    log: dict[str, Any] = {"kind": KIND, "client_id": client_id.strip()}

    adapter = _adapter(rt, {**normalized, "mcs_enrolled": False}, credentials)
    adapter.check_connection()  # AuthError: bad keys, nothing written
    enrolled, channel = _multichannel(rt, wanted, credentials)
    final = {**wanted, "mcs_enrolled": enrolled}
    if channel:
        final["order_channel_id"] = channel

    with rt.db.session() as session:
        client_id_row = (
            find_platform_client(session, platform_client).id if platform_client is not None else None
        )
        merchant = create_merchant(
            session,
            rt.secrets,
            kind=KIND,
            name=name,
            config=final,
            credentials=credentials,
            inventory_buffer=inventory_buffer,
            platform_client_id=client_id_row,
        )
        merchant_id, store_ref, stored_config = merchant.id, merchant.store_ref, dict(merchant.config)
    log["merchant_id"] = merchant_id

    warnings: list[str] = []
    event_types: list[str] = []
    if enrolled:
        waits = float(stored_config.get("mcs_poll_seconds") or 0) + rt.settings.http_timeout_seconds
        if waits >= order_push.attempt_timeout(rt):
            warnings.append(
                f"mcs_poll_seconds leaves an order push attempt no time to finish within its "
                f"{order_push.attempt_timeout(rt)} s limit: lower it, or raise STALE_AFTER_SECONDS"
            )
    base = (public_url if public_url is not None else rt.settings.public_url).strip()
    if not base:
        warnings.append(
            "PUBLIC_URL is not set: Walmart notifications were not subscribed; stock and Walmart orders "
            "are kept by the scheduled polls only"
        )
    else:
        try:
            event_types = _adapter(rt, stored_config, credentials).register_webhooks(
                callback_url(base, merchant_id)
            )
        except StorelinkError as exc:
            warnings.append(
                f"Walmart notifications were not subscribed ({exc.message}); stock and Walmart orders are "
                "kept by the scheduled polls only"
            )
    for warning in warnings:
        logger.warning("walmart connect: %s", warning, extra=log)

    run_id: int | None = None
    if first_sync:
        run_id = syncs.request_sync(rt, merchant_id).id
    logger.info(
        "walmart seller connected",
        extra={**log, "mcs_enrolled": enrolled, "event_types": len(event_types), "run_id": run_id},
    )
    return Connected(merchant_id, store_ref, enrolled, channel, event_types, run_id, warnings)
