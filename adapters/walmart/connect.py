"""Connecting a Walmart Marketplace seller: keys checked and Multichannel found before anything is written.

The core (`connector.merchants.connect`) runs the generic part; this flow supplies Walmart's, in this order, so that
keys Walmart refuses leave nothing behind:

1. the config is validated and a token is requested with the client id and secret (`check_connection`): an
   `AuthError` here is the caller's clear "bad key" error;
2. Multichannel Solutions: unless the caller said whether the seller is enrolled, the sales channel is looked
   up (`discover_channel`); Walmart refusing the channel call for a seller not onboarded means
   `mcs_enrolled: false` (platform sales then reduce Walmart's stock), a channel found means
   `mcs_enrolled: true` with its `order_channel_id`; an enrolled seller whose channel cannot be told apart is
   an error naming the fix (`order_channel_id` / `order_channel_name`).

The core then stores the merchant, subscribes notifications at `{PUBLIC_URL}/webhooks/walmart/<merchant id>`
and queues the first full sync.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol, runtime_checkable

from pydantic import Field, SecretStr, field_validator

from adapters.walmart.base import WalmartBase
from connector.domain.errors import PermanentError, StorelinkError, ValidationError
from connector.domain.ports import AdapterFactory, ConnectFields, ConnectOption, ConnectPlan, StoreSetting

logger = logging.getLogger(__name__)

_NOT_ENROLLED_CODES: Final = ("INVALID_MCS_REQUEST",)


class WalmartConnect(ConnectFields):
    """A Walmart seller's API keys (Developer Portal: client id and client secret) and how it sells."""

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

    @field_validator("client_secret")
    @classmethod
    def _visible_ascii(cls, value: SecretStr) -> SecretStr:
        if not all("!" <= ch <= "~" for ch in value.get_secret_value()):
            raise ValueError("must be visible ASCII characters (as Walmart issues them)")
        return value


@runtime_checkable
class _Connection(Protocol):
    """What connecting needs from the Walmart adapter."""

    def check_connection(self) -> None: ...

    def discover_channel(self) -> str: ...


def _not_enrolled(exc: StorelinkError) -> bool:
    codes = exc.details.get("codes")
    named = [str(code).upper() for code in codes] if isinstance(codes, list) else []
    return exc.code == "forbidden_request" or any(code in named for code in _NOT_ENROLLED_CODES)


def _connection(
    adapter_for: AdapterFactory, config: Mapping[str, Any], credentials: Mapping[str, str]
) -> _Connection:
    adapter = adapter_for(config, credentials)
    if not isinstance(adapter, _Connection):
        raise PermanentError("the installed walmart adapter cannot connect sellers", code="unsupported")
    return adapter


def _multichannel(
    adapter_for: AdapterFactory, config: dict[str, Any], credentials: Mapping[str, str]
) -> tuple[bool, str | None]:
    """(enrolled, channel id) of the seller: as `config` says (`order_channel_id`, `mcs_enrolled`), else as
    Walmart answers the channel lookup."""
    if config.get("order_channel_id"):
        return True, str(config["order_channel_id"])
    said = config.get("mcs_enrolled")
    if said is False:
        return False, None
    probe = _connection(adapter_for, {**config, "mcs_enrolled": True}, credentials)
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


class WalmartConnectFlow:
    """The `ConnectFlow` of Walmart sellers (see the module docstring)."""

    store_name = "Walmart"
    connect_schema = WalmartConnect
    connect_options = (
        ConnectOption("client_id", "--client-id", "walmart: API client id.", required=True),
        ConnectOption(
            "client_secret",
            "--client-secret",
            "walmart: API client secret (else read from the environment, else prompted for).",
            envvar="WALMART_CLIENT_SECRET",
            secret=True,
            prompt="Walmart client secret",
        ),
        ConnectOption("seller_id", "--seller-id", "walmart: seller (partner) id."),
        ConnectOption("base_url", "--base-url", "walmart: API base URL (default: production)."),
        ConnectOption(
            "mcs_enrolled",
            "--mcs/--no-mcs",
            "walmart: the seller is (not) on Multichannel Solutions (default: asked of Walmart).",
        ),
    )
    settings = (
        StoreSetting(
            "base_url",
            "WALMART_BASE_URL",
            "Address of the Walmart Marketplace API for sellers connected through the Platform API. "
            "Empty: Walmart's own (production or sandbox, as the connection asks); the emulator's URL in tests.",
        ),
    )
    config_fields = ("environment", "mcs_enrolled", "location")
    """Connect fields stored as they are in the merchant's config when given."""

    def connect(
        self,
        fields: Mapping[str, Any],
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        settings: Mapping[str, str],
        adapter_for: AdapterFactory,
    ) -> ConnectPlan:
        """Check the keys and find the seller's Multichannel channel; raises AuthError for keys Walmart
        refuses and ValidationError / PermanentError for anything else that stops the connection.
        `credentials` are stored with the keys (`webhook_username` / `webhook_password` for BASIC_AUTH
        notifications)."""
        client_id = str(fields.get("client_id") or "").strip()
        secret = fields.get("client_secret") or ""
        client_secret = secret.get_secret_value() if isinstance(secret, SecretStr) else str(secret)
        if not client_id or not client_secret.strip():
            raise ValidationError(
                "a Walmart client id and client secret are required", code="missing_credentials"
            )
        wanted: dict[str, Any] = {**config, "client_id": client_id}
        for key in self.config_fields:
            if fields.get(key) is not None:
                wanted[key] = fields[key]
        if fields.get("seller_id"):
            wanted["seller_id"] = str(fields["seller_id"]).strip()
        base_url = fields.get("base_url") or settings.get("base_url")
        if base_url:
            wanted["base_url"] = base_url
        keys = {**credentials, "client_id": client_id, "client_secret": client_secret}
        normalized = WalmartBase.validate_config(wanted)
        _connection(adapter_for, {**normalized, "mcs_enrolled": False}, keys).check_connection()
        enrolled, channel = _multichannel(adapter_for, wanted, keys)
        final = {**wanted, "mcs_enrolled": enrolled}
        if channel:
            final["order_channel_id"] = channel
        summary = (
            [f"Multichannel Solutions: sales channel {channel}"]
            if enrolled
            else ["not on Multichannel Solutions: platform sales will reduce Walmart stock"]
        )
        return ConnectPlan(
            final, keys, {"mcs_enrolled": enrolled, "order_channel_id": channel}, summary=summary
        )

    def connected_warnings(
        self, config: Mapping[str, Any], attempt_timeout: float, http_timeout: float
    ) -> list[str]:
        """An order push attempt must have time to poll Multichannel for the order's outcome."""
        if not config.get("mcs_enrolled"):
            return []
        waits = float(config.get("mcs_poll_seconds") or 0) + http_timeout
        if waits >= attempt_timeout:
            return [
                f"mcs_poll_seconds leaves an order push attempt no time to finish within its "
                f"{attempt_timeout} s limit: lower it, or raise STALE_AFTER_SECONDS"
            ]
        return []

    def unsubscribed_warning(self, reason: str | None) -> str:
        """The warning when notifications were not subscribed: for want of PUBLIC_URL (None), or `reason`."""
        if reason is None:
            return (
                "PUBLIC_URL is not set: Walmart notifications were not subscribed; stock and Walmart orders "
                "are kept by the scheduled polls only"
            )
        return (
            f"Walmart notifications were not subscribed ({reason}); stock and Walmart orders are "
            "kept by the scheduled polls only"
        )
