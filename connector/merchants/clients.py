"""Platform clients and their API keys: creation, authentication, key rotation and deactivation.

An API key is `sl_live_` followed by 32 URL-safe random characters (about 190 bits of entropy). It is shown
once, when it is made, and stored only as its SHA-256 digest. A slow password hash (bcrypt, scrypt) exists to
make guessing low-entropy passwords expensive; a key drawn from `secrets` cannot be guessed, so a fast hash
is the right choice and lets every request look its client up by an indexed digest.

Web processes keep successful key lookups in memory (`connector.api.common.KeyCache`). Every change that can
refuse a key (rotation, deactivation, removal) increments the key generation in Redis
(`invalidate_cached_keys`), and each request compares it with the generation its cached lookup was made
under, so every worker of every process drops the old key at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.errors import NotFoundError, ValidationError
from connector.infra.models import Merchant, Order, PlatformClient, WebhookEndpoint

logger = logging.getLogger(__name__)

KEY_PREFIX = "sl_live_"
KEY_RANDOM_CHARS = 32
MAX_NAME_LENGTH = 200
KEY_GENERATION = "storelink:api-keys:generation"
"""Redis counter incremented whenever a key may have stopped working; cached lookups of older ones are void."""
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def generate_key() -> str:
    """A fresh API key: the prefix and 32 URL-safe random characters."""
    random_part = secrets.token_urlsafe(KEY_RANDOM_CHARS)[:KEY_RANDOM_CHARS]
    return KEY_PREFIX + random_part


def hash_key(key: str) -> str:
    """The stored form of `key`: its SHA-256 digest in hex (64 characters)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(key: str) -> bool:
    """True when `key` has the shape of an API key (checked before any database work)."""
    if not key.startswith(KEY_PREFIX) or len(key) != len(KEY_PREFIX) + KEY_RANDOM_CHARS:
        return False
    return all(ch in _URLSAFE for ch in key[len(KEY_PREFIX) :])


def _clean_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValidationError("name is required", details={"field": "name"})
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationError(f"name is longer than {MAX_NAME_LENGTH} characters", details={"field": "name"})
    return cleaned


def create_client(session: Session, name: str) -> tuple[PlatformClient, str]:
    """A new active client and its API key in clear (returned here only; the database keeps the hash)."""
    cleaned = _clean_name(name)
    if session.scalar(select(PlatformClient.id).where(PlatformClient.name == cleaned)) is not None:
        raise ValidationError(
            f"a platform client named {cleaned!r} already exists", details={"field": "name"}
        )
    key = generate_key()
    client = PlatformClient(name=cleaned, api_key_hash=hash_key(key), active=True)
    try:
        with session.begin_nested():
            session.add(client)
            session.flush()
    except IntegrityError:  # a concurrent create with the same name won the race
        raise ValidationError(
            f"a platform client named {cleaned!r} already exists", details={"field": "name"}
        ) from None
    logger.info("platform client created", extra={"client_id": client.id, "client_name": cleaned})
    return client, key


def authenticate(session: Session, key: str) -> PlatformClient | None:
    """The active client whose key is `key`, else None. The digest comparison is constant-time."""
    if not isinstance(key, str) or not looks_like_key(key):
        return None
    digest = hash_key(key)
    client = session.scalar(select(PlatformClient).where(PlatformClient.api_key_hash == digest))
    if client is None or not hmac.compare_digest(client.api_key_hash.encode(), digest.encode()):
        return None
    if not client.active:
        return None
    return client


def get_client(session: Session, client_id: int) -> PlatformClient:
    """The client, or NotFoundError."""
    client = session.get(PlatformClient, client_id)
    if client is None:
        raise NotFoundError(f"platform client {client_id} not found", code="client_not_found")
    return client


def list_clients(session: Session) -> list[PlatformClient]:
    """Every platform client, by id."""
    return list(session.scalars(select(PlatformClient).order_by(PlatformClient.id)))


def rotate_key(session: Session, client_id: int) -> tuple[PlatformClient, str]:
    """Replace the client's key; the old key stops working at commit. Returns the new key in clear."""
    client = get_client(session, client_id)
    key = generate_key()
    client.api_key_hash = hash_key(key)
    session.flush()
    logger.info("platform client key rotated", extra={"client_id": client.id})
    return client, key


def deactivate(session: Session, client_id: int) -> PlatformClient:
    """Refuse the client's key from now on (its data is kept)."""
    client = get_client(session, client_id)
    client.active = False
    session.flush()
    logger.info("platform client deactivated", extra={"client_id": client.id})
    return client


def remove(session: Session, client_id: int) -> str:
    """Delete a client that holds nothing (no merchants, orders or webhook endpoints); returns its name.
    A client that holds data is refused (ValidationError naming what it holds): deactivate it instead."""
    client = get_client(session, client_id)
    held = {
        "merchant(s)": Merchant.platform_client_id,
        "order(s)": Order.platform_client_id,
        "webhook endpoint(s)": WebhookEndpoint.platform_client_id,
    }
    counts = {
        label: int(session.scalar(select(func.count()).where(column == client_id)) or 0)
        for label, column in held.items()
    }
    holding = ", ".join(f"{count} {label}" for label, count in counts.items() if count)
    if holding:
        raise ValidationError(
            f"platform client {client_id} has {holding}: deactivate it instead", code="client_in_use"
        )
    name = client.name
    session.delete(client)
    session.flush()
    logger.info("platform client removed", extra={"client_id": client_id})
    return name


def key_generation(redis: Redis) -> int:
    """The current key generation (0 before any change); RedisError when Redis does not answer."""
    value = redis.get(KEY_GENERATION)
    return int(value) if value is not None else 0


def invalidate_cached_keys(redis: Redis) -> bool:
    """Void every web process's cached key lookups (call after the change commits). False when Redis did not
    answer: processes that still reach Redis then keep an old lookup up to `KEY_CACHE_SECONDS`."""
    try:
        redis.incr(KEY_GENERATION)
    except RedisError:
        logger.warning("API key caches not invalidated: Redis unreachable", exc_info=True)
        return False
    return True
