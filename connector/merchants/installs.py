"""Store installation by an authorization-code grant, for any store kind whose adapter is `Installable`.

`start` issues a one-time state nonce (kept in Redis with a TTL) and returns the store's grant page.
`complete` checks the callback (signature and store name through the adapter, then the nonce, consumed once
and bound to the kind and store it was issued for), has the adapter exchange the grant for credentials and
check the scopes, registers the store's webhook subscriptions, then creates or re-installs the merchant with
its encrypted credentials and records its first full sync in one transaction, and queues that sync. A
failure at any step raises `InstallError` (an HTTP status and a stable code) with nothing written.

An installable kind `<kind>` is configured by the settings `<kind>_api_key`, `<kind>_api_secret`,
`<kind>_scopes` and `<kind>_admin_base_url` (e.g. SHOPIFY_API_KEY, …).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Final, cast

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from connector.catalog import syncs
from connector.domain import registry
from connector.domain.errors import AuthError, PermanentError, RetryableError, StorelinkError, ValidationError
from connector.domain.ports import Installable, InstallApp
from connector.infra.runtime import Runtime
from connector.infra.store_adapters import http_options
from connector.merchants.records import install_merchant

logger = logging.getLogger(__name__)

STATE_TTL_SECONDS: Final = 600
"""How long a merchant has between the install redirect and the callback."""
_STATE_KEY: Final = "storelink:install:state:"
_INSTALL_METHODS: Final = (
    "authorize_url",
    "callback_store_ref",
    "complete_install",
    "verify_app_webhook",
    "register_webhooks",
)


class InstallError(StorelinkError):
    """An install or callback refused: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str, *, details: dict[str, object] | None = None):
        super().__init__(message, code=code, details=details)
        self.status = status


@dataclass(frozen=True, slots=True)
class Installed:
    """What a completed install did."""

    merchant_id: int
    kind: str
    store_ref: str
    created: bool
    run_id: int | None
    webhook_topics: list[str] = field(default_factory=list)


def installable(kind: str) -> type[Installable]:
    """The adapter class of `kind` when it supports installation; InstallError 404 otherwise."""
    try:
        cls = registry.adapter_class(kind)
    except ValidationError:
        raise InstallError(404, "unknown_kind", f"no store kind {kind!r} is installed here") from None
    if not all(callable(getattr(cls, name, None)) for name in _INSTALL_METHODS):
        raise InstallError(404, "not_installable", f"{kind} stores are not installed through this address")
    return cast(type[Installable], cls)


def app_for(settings: Settings, kind: str) -> InstallApp:
    """The OAuth app of `kind` from settings; InstallError 404 when it is not configured."""
    client_id = getattr(settings, f"{kind}_api_key", None)
    secret = getattr(settings, f"{kind}_api_secret", None)
    secret_value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if (
        not isinstance(client_id, str)
        or not client_id
        or not isinstance(secret_value, str)
        or not secret_value
    ):
        name = kind.upper()
        raise InstallError(
            404,
            "install_not_configured",
            f"{kind} installs are off here: {name}_API_KEY and {name}_API_SECRET are not set",
        )
    scopes = getattr(settings, f"{kind}_scopes", "") or ""
    base_url = getattr(settings, f"{kind}_admin_base_url", "") or ""
    return InstallApp(
        client_id=client_id,
        client_secret=secret_value,
        scopes=tuple(part.strip() for part in str(scopes).split(",") if part.strip()),
        admin_base_url=str(base_url) or None,
    )


def _refused(exc: StorelinkError) -> InstallError:
    """An adapter's error as the answer to the merchant's browser."""
    if isinstance(exc, InstallError):
        return exc
    if isinstance(exc, RetryableError):
        return InstallError(502, exc.code, f"the store could not be reached: {exc.message}")
    if isinstance(exc, AuthError):
        return InstallError(403, exc.code, exc.message, details=exc.details)
    return InstallError(400, exc.code, exc.message, details=exc.details)


def start(rt: Runtime, kind: str, params: dict[str, str], public_url: str) -> str:
    """The store's grant page for the shop in `params`, with a new one-time state; the callback goes to
    `<public_url>/<kind>/callback`. A request the store signed (opened from the store's admin, with an
    `hmac`) must check out; a bare `?shop=` is a merchant typing its shop."""
    cls = installable(kind)
    app = app_for(rt.settings, kind)
    shop = params.get("shop")
    if not shop:
        hint = str(getattr(cls, "install_shop_hint", "<shop>"))
        raise InstallError(400, "invalid_shop", f"the shop to install is missing: ?shop={hint}")
    if "hmac" in params:
        try:
            cls.callback_store_ref(app, params)
        except StorelinkError as exc:
            raise _refused(exc) from None
    state = secrets.token_urlsafe(24)
    redirect_uri = f"{public_url}/{kind}/callback"
    try:
        url = cls.authorize_url(app, shop, state, redirect_uri)
    except StorelinkError as exc:
        raise _refused(exc) from None
    issued = json.dumps({"kind": kind, "shop": shop.lower()})
    rt.redis.set(_STATE_KEY + state, issued, ex=STATE_TTL_SECONDS)
    logger.info("install started", extra={"kind": kind, "shop": shop.lower()})
    return url


def _consume_state(rt: Runtime, state: object) -> dict[str, Any] | None:
    """The record the state was issued with, removed in the same transaction: a state works once."""
    if not isinstance(state, str) or not state or len(state) > 200:
        return None
    pipe = rt.redis.pipeline(transaction=True)
    pipe.get(_STATE_KEY + state)
    pipe.delete(_STATE_KEY + state)
    value, deleted = pipe.execute()
    if not value or not deleted:
        return None
    try:
        found = json.loads(value)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def complete(rt: Runtime, kind: str, params: dict[str, str], public_url: str) -> Installed:
    """Finish an install from the store's callback query `params`; see the module docstring."""
    cls = installable(kind)
    app = app_for(rt.settings, kind)
    http = http_options(rt.settings)
    try:
        store_ref = cls.callback_store_ref(app, params)
    except StorelinkError as exc:
        raise _refused(exc) from None
    issued = _consume_state(rt, params.get("state"))
    if issued is None or issued.get("kind") != kind or issued.get("shop") != store_ref:
        logger.warning(
            "install callback with an unknown or used state", extra={"kind": kind, "shop": store_ref}
        )
        raise InstallError(
            400,
            "invalid_state",
            "the install's state is unknown, expired or already used: start the install again",
        )
    try:
        config, credentials = cls.complete_install(app, params, http)
        adapter = registry.create_adapter(kind, config, credentials, http)
        topics = cast(Installable, adapter).register_webhooks(f"{public_url}/webhooks/{kind}")
    except StorelinkError as exc:
        logger.warning("install refused", extra={"kind": kind, "shop": store_ref, "code": exc.code})
        raise _refused(exc) from None
    try:
        with rt.db.session() as session:
            merchant, created = install_merchant(
                session, rt.secrets, kind=kind, config=config, credentials=credentials
            )
            run, queued = syncs.record_sync(session, merchant.id)
            merchant_id, run_id = merchant.id, run.id
    except (IntegrityError, ValidationError) as exc:
        raise InstallError(
            409, "install_conflict", f"{store_ref} is being installed by another request"
        ) from exc
    except PermanentError as exc:
        raise _refused(exc) from None
    if queued:
        syncs.enqueue_run(rt, run)
    logger.info(
        "store installed",
        extra={
            "kind": kind,
            "shop": store_ref,
            "merchant_id": merchant_id,
            "new_merchant": created,
            "run_id": run_id,
            "webhook_topics": len(topics),
        },
    )
    return Installed(merchant_id, kind, store_ref, created, run_id, topics)
