"""Merchant service: connect a store, read a merchant, and build its adapter with decrypted credentials."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import Settings
from connector import registry
from connector.crypto import SecretBox
from connector.errors import NotFoundError, ValidationError
from connector.models import Merchant
from connector.ports import HttpOptions, StoreAdapter

logger = logging.getLogger(__name__)


def http_options(settings: Settings) -> HttpOptions:
    return HttpOptions(timeout=settings.http_timeout_seconds, allow_files=settings.feed_allow_files)


def create_merchant(
    session: Session,
    secrets: SecretBox,
    *,
    kind: str,
    name: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, str] | None = None,
    inventory_buffer: int = 0,
    platform_client_id: int | None = None,
) -> Merchant:
    """Validate the store config through its adapter and insert the merchant (credentials encrypted)."""
    cls = registry.adapter_class(kind)
    normalized = cls.validate_config(config)
    if inventory_buffer < 0:
        raise ValidationError("inventory buffer must be zero or more", code="bad_buffer")
    if not name.strip():
        raise ValidationError("merchant name must not be empty", code="bad_name")
    merchant = Merchant(
        kind=kind,
        store_ref=cls.store_ref(normalized),
        name=name.strip(),
        config=normalized,
        credentials_encrypted=secrets.encrypt(dict(credentials)) if credentials else None,
        inventory_buffer=inventory_buffer,
        location_ref=normalized.get("location"),
        platform_client_id=platform_client_id,
        status="installed",
    )
    try:
        with session.begin_nested():
            session.add(merchant)
            session.flush()
    except IntegrityError:
        raise ValidationError(
            f"a {kind} merchant for {merchant.store_ref} already exists", code="merchant_exists"
        ) from None
    logger.info("merchant created", extra={"merchant_id": merchant.id, "kind": kind})
    return merchant


def get_merchant(session: Session, ref: str | int) -> Merchant:
    """Find a merchant by id or by name."""
    merchant: Merchant | None
    if isinstance(ref, int) or str(ref).isdigit():
        merchant = session.get(Merchant, int(ref))
    else:
        merchant = session.scalars(select(Merchant).where(Merchant.name == ref)).first()
    if merchant is None:
        raise NotFoundError(f"no merchant {ref!r}", code="merchant_not_found")
    return merchant


def build_adapter(merchant: Merchant, secrets: SecretBox, settings: Settings) -> StoreAdapter:
    credentials = secrets.decrypt(merchant.credentials_encrypted)
    return registry.create_adapter(merchant.kind, merchant.config, credentials, http_options(settings))


def rotate_credentials(session: Session, secrets: SecretBox) -> int:
    """Re-encrypt every stored credential under the first key (after a key was prepended to SECRET_KEYS)."""
    count = 0
    for merchant in session.scalars(select(Merchant).where(Merchant.credentials_encrypted.is_not(None))):
        assert merchant.credentials_encrypted is not None
        merchant.credentials_encrypted = secrets.rotate(merchant.credentials_encrypted)
        count += 1
    return count
