"""Console users: made, listed and removed by support (the CLI), checked at sign-in, and the merchants each
may see; and the one-time links that sign a merchant in to its own page after a store install.

Passwords are kept as argon2id hashes (argon2-cffi's defaults, rehashed on sign-in when they change). A
`support` user sees every merchant; a `merchant` user only the merchants linked to it. A one-time link's token
is shown once; only its SHA-256 is stored, and redeeming it marks it used in the same statement.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.errors import NotFoundError, ValidationError
from connector.infra.models import Merchant
from connector.infra.models_console import ConsoleLink, ConsoleUser, ConsoleUserMerchant
from connector.merchants.records import get_merchant

logger = logging.getLogger(__name__)

SUPPORT, MERCHANT = "support", "merchant"
ROLES = (SUPPORT, MERCHANT)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"[^@\s]{1,200}@[^@\s]{1,118}\.[^@\s]{1,}")
_hasher = PasswordHasher()
_dummy_hashes: dict[PasswordHasher, str] = {}


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as listed: its role and the names of the merchants it may see (empty for support)."""

    id: int
    email: str
    role: str
    merchants: list[str]
    created_at: datetime
    signed_in_at: datetime | None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _check(email: str, password: str, role: str, merchants: Sequence[str | int]) -> str:
    address = normalize_email(email)
    if len(address) > 320 or not _EMAIL.fullmatch(address):
        raise ValidationError(f"{email!r} is not an email address", code="invalid_email")
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError(
            f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", code="weak_password"
        )
    if role == MERCHANT and not merchants:
        raise ValidationError("a merchant user needs at least one --merchant", code="merchants_required")
    if role == SUPPORT and merchants:
        raise ValidationError("a support user sees every merchant: give no --merchant", code="invalid_role")
    return address


def create_user(
    session: Session, email: str, password: str, role: str, merchants: Sequence[str | int] = ()
) -> ConsoleUser:
    """Add a user; `merchants` (ids or names) are the ones a merchant user may see."""
    address = _check(email, password, role, merchants)
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.email == address)) is not None:
        raise ValidationError(f"a user {address} exists already", code="user_exists")
    merchant_ids = sorted({get_merchant(session, ref).id for ref in merchants})
    user = ConsoleUser(email=address, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise ValidationError(f"a user {address} exists already", code="user_exists") from None
    session.add_all(ConsoleUserMerchant(user_id=user.id, merchant_id=m) for m in merchant_ids)
    session.flush()
    logger.info("console user added", extra={"user_id": user.id, "role": role, "merchants": merchant_ids})
    return user


def list_users(session: Session) -> list[UserRow]:
    """Every user, by email, with the merchants each may see."""
    names: dict[int, list[str]] = {}
    for user_id, name in session.execute(
        select(ConsoleUserMerchant.user_id, Merchant.name)
        .join(Merchant, Merchant.id == ConsoleUserMerchant.merchant_id)
        .order_by(Merchant.name)
    ):
        names.setdefault(user_id, []).append(name)
    return [
        UserRow(u.id, u.email, u.role, names.get(u.id, []), u.created_at, u.signed_in_at)
        for u in session.scalars(select(ConsoleUser).order_by(ConsoleUser.email))
    ]


def remove_user(session: Session, email: str) -> None:
    """Remove a user; its sessions end at their next request (each request reads the user again)."""
    address = normalize_email(email)
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.email == address))
    if user is None:
        raise NotFoundError(f"no user {address}", code="user_not_found")
    session.execute(delete(ConsoleUserMerchant).where(ConsoleUserMerchant.user_id == user.id))
    session.delete(user)
    logger.info("console user removed", extra={"user_id": user.id})


def _dummy_hash() -> str:
    """A hash with the current hasher's parameters, verified when the email is unknown so that the answer takes
    as long as for a wrong password; made on first use, not when every process imports this module."""
    if _hasher not in _dummy_hashes:
        _dummy_hashes[_hasher] = _hasher.hash("storelink: no such user")
    return _dummy_hashes[_hasher]


def authenticate(session: Session, email: str, password: str) -> ConsoleUser | None:
    """The user whose email and password these are, else None (as slow for an unknown email as a wrong
    password). A hash made with older parameters is replaced."""
    address = normalize_email(email)
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.email == address)) if address else None
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.signed_in_at = datetime.now(UTC)
    return user


def get_user(session: Session, user_id: int) -> ConsoleUser | None:
    return session.get(ConsoleUser, user_id)


def merchant_ids_of(session: Session, user: ConsoleUser) -> frozenset[int] | None:
    """The merchants `user` may see: None for support (every merchant)."""
    if user.role == SUPPORT:
        return None
    return frozenset(
        session.scalars(select(ConsoleUserMerchant.merchant_id).where(ConsoleUserMerchant.user_id == user.id))
    )


# --- one-time sign-in links -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(session: Session, merchant_id: int, ttl: timedelta) -> str:
    """A new one-time token that signs in to `merchant_id`'s page until `ttl` from now (shown once)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.execute(delete(ConsoleLink).where(ConsoleLink.expires_at < now - timedelta(days=1)))
    session.add(
        ConsoleLink(
            token_hash=_token_hash(token), merchant_id=merchant_id, created_at=now, expires_at=now + ttl
        )
    )
    session.flush()
    logger.info("console sign-in link issued", extra={"merchant_id": merchant_id})
    return token


def redeem_link(session: Session, token: str) -> int | None:
    """The merchant a link is for, marking it used; None when unknown, used or expired."""
    if not token or len(token) > 200:
        return None
    now = datetime.now(UTC)
    digest = _token_hash(token)
    used = session.execute(
        update(ConsoleLink)
        .where(ConsoleLink.token_hash == digest, ConsoleLink.used_at.is_(None), ConsoleLink.expires_at > now)
        .values(used_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not used:
        logger.warning("console sign-in link refused: unknown, used or expired")
        return None
    merchant_id = session.scalar(select(ConsoleLink.merchant_id).where(ConsoleLink.token_hash == digest))
    logger.info("console sign-in link used", extra={"merchant_id": merchant_id})
    return merchant_id
