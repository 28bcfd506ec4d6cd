"""Merchant records: created on connect or install, found by name or id, credentials sealed and rotated.

A merchant's adapter is built by `connector.infra.store_adapters`, below every service that talks to a store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain import registry
from connector.domain.errors import NotFoundError, PermanentError, ValidationError
from connector.domain.ports import (
    StoreAdapter,
)
from connector.infra import problems
from connector.infra.crypto import SecretBox
from connector.infra.models import Merchant

logger = logging.getLogger(__name__)


def split_secrets(
    cls: type[StoreAdapter], config: Mapping[str, Any], credentials: Mapping[str, str]
) -> tuple[Mapping[str, Any], Mapping[str, str]]:
    """(config, credentials) with what the adapter says is secret in its config (a feed URL's query string
    and user:password) moved into the credentials, which are stored encrypted; unchanged for other kinds."""
    split = getattr(cls, "split_secrets", None)
    if split is None:
        return config, credentials
    moved: tuple[Mapping[str, Any], Mapping[str, str]] = split(config, credentials)
    return moved


def seal_config_secrets(session: Session, secrets: SecretBox) -> int:
    """Move the secrets of merchants stored before their config was split (a feed URL with its token in
    the query string) into their encrypted credentials, and their store_ref to the URL without them.
    Returns how many merchants changed; running it again changes nothing."""
    count = 0
    for merchant in session.scalars(select(Merchant).order_by(Merchant.id)):
        cls = registry.adapter_class(merchant.kind) if merchant.kind in registry.kinds() else None
        if cls is None or getattr(cls, "split_secrets", None) is None:
            continue
        if dict(split_secrets(cls, merchant.config, {})[0]) == merchant.config:
            continue  # nothing secret in its config
        try:
            config, credentials = split_secrets(
                cls, merchant.config, secrets.decrypt(merchant.credentials_encrypted)
            )
            normalized = cls.validate_config(config)
            store_ref = cls.store_ref(normalized)
        except PermanentError as exc:  # a config that no longer validates, credentials under another key
            logger.warning(
                "merchant config secrets left in place", extra={"merchant_id": merchant.id, "error": str(exc)}
            )
            continue
        merchant.config = normalized
        merchant.credentials_encrypted = secrets.encrypt(dict(credentials)) if credentials else None
        session.flush()
        _set_store_ref(session, merchant, store_ref)
        count += 1
        logger.info("merchant config secrets moved to credentials", extra={"merchant_id": merchant.id})
    return count


def _set_store_ref(session: Session, merchant: Merchant, store_ref: str) -> None:
    """`store_ref`, or `store_ref#<id>` when another merchant of the kind has that one already (two feeds
    that differed only in their query string)."""
    try:
        with session.begin_nested():
            merchant.store_ref = store_ref
            session.flush()
    except IntegrityError:
        merchant.store_ref = f"{store_ref}#{merchant.id}"
        session.flush()
        logger.warning("store_ref taken; merchant id appended", extra={"merchant_id": merchant.id})


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
    config, credentials = split_secrets(cls, config, credentials or {})
    normalized = cls.validate_config(config)
    if inventory_buffer < 0:
        raise ValidationError("inventory buffer must be zero or more", code="bad_buffer")
    if not name.strip():
        raise ValidationError("merchant name must not be empty", code="bad_name")
    _refuse_taken_name(session, name.strip())
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
        _refuse_taken_name(session, merchant.name)  # taken meanwhile by a concurrent add
        raise ValidationError(
            f"a {kind} merchant for {merchant.store_ref} already exists", code="merchant_exists"
        ) from None
    logger.info("merchant created", extra={"merchant_id": merchant.id, "kind": kind})
    return merchant


def _refuse_taken_name(session: Session, name: str) -> None:
    """Merchant names are unique (commands find a merchant by its name): a taken one is refused."""
    holder = session.scalars(select(Merchant.id).where(Merchant.name == name)).first()
    if holder is not None:
        raise ValidationError(
            f"merchant name {name!r} is taken by merchant {holder}; choose another name",
            code="merchant_name_taken",
            details={"field": "name"},
        )


def free_name(session: Session, name: str) -> str:
    """`name`, or `name-2`, `name-3`, ... : the first no merchant has (for merchants named automatically)."""
    candidate, tries = name, 1
    while session.scalars(select(Merchant.id).where(Merchant.name == candidate)).first() is not None:
        tries += 1
        candidate = f"{name}-{tries}"
    return candidate


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


def list_merchants(session: Session) -> list[Merchant]:
    """Every merchant, by id."""
    return list(session.scalars(select(Merchant).order_by(Merchant.id)))


def find_merchant(session: Session, name: str) -> Merchant | None:
    """The merchant named `name`, if there is one."""
    return session.scalars(select(Merchant).where(Merchant.name == name)).first()


def install_merchant(
    session: Session,
    secrets: SecretBox,
    *,
    kind: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, str],
) -> tuple[Merchant, bool]:
    """Create the merchant of a store just installed, or re-install it: the new credentials replace the old
    ones in one encrypted write, the new config entries are merged over the old, the status is `installed`
    and any problem cleared. Returns (merchant, created)."""
    cls = registry.adapter_class(kind)
    normalized = cls.validate_config(config)
    store_ref = cls.store_ref(normalized)
    merchant = session.scalars(
        select(Merchant).where(Merchant.kind == kind, Merchant.store_ref == store_ref).with_for_update()
    ).first()
    if merchant is None:
        created = create_merchant(
            session,
            secrets,
            kind=kind,
            name=free_name(session, store_ref),
            config=normalized,
            credentials=credentials,
        )
        return created, True
    merchant.config = cls.validate_config({**merchant.config, **normalized})
    merchant.credentials_encrypted = secrets.encrypt(dict(credentials))
    merchant.status = "installed"
    merchant.problem = None
    session.flush()
    problems.clear_problems(session, [problems.CREDENTIALS_REFUSED], merchant_id=merchant.id)
    logger.info("merchant re-installed", extra={"merchant_id": merchant.id, "kind": kind})
    return merchant, False


def rotate_credentials(session: Session, secrets: SecretBox) -> int:
    """Re-encrypt every stored credential under the first key (after a key was prepended to SECRET_KEYS)."""
    count = 0
    for merchant in session.scalars(select(Merchant).where(Merchant.credentials_encrypted.is_not(None))):
        assert merchant.credentials_encrypted is not None
        merchant.credentials_encrypted = secrets.rotate(merchant.credentials_encrypted)
        count += 1
    return count
