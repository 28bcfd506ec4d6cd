"""Webhook endpoint management: create, list, update, delete, rotate the secret; URLs checked for SSRF.

Limits keep one client from weighing on the others' event fan-out: a platform client has at most
`MAX_ENDPOINTS_PER_CLIENT` endpoints (`EndpointLimitError` beyond), an endpoint at most `MAX_EVENT_TYPES`
event type filters of at most `MAX_EVENT_TYPE_LENGTH` characters each, and a URL at most `MAX_URL_LENGTH`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.domain.errors import NotFoundError, PermanentError, ValidationError
from connector.infra.addresses import BlockedAddressError, UnresolvedHostError, check_host
from connector.infra.crypto import SecretBox
from connector.infra.models import PlatformClient, WebhookEndpoint
from webhooks.outbound.signing import generate_secret

logger = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(hours=24)
MAX_URL_LENGTH = 2000
PRIVATE_SETTING = "WEBHOOK_ALLOW_PRIVATE_URLS=true"
MAX_ENDPOINTS_PER_CLIENT = 20
MAX_EVENT_TYPES = 20
MAX_EVENT_TYPE_LENGTH = 100
_EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?")


class EndpointLimitError(PermanentError):
    """The platform client already has as many webhook endpoints as it may."""

    code = "endpoint_limit_reached"

    def __init__(self, limit: int):
        super().__init__(
            f"a platform client may have at most {limit} webhook endpoints; delete one first",
            details={"limit": limit},
        )
        self.limit = limit


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """An endpoint with its plain secret: returned once, on create and on rotation, never stored in clear."""

    endpoint: WebhookEndpoint
    secret: str


def validate_url(url: str, *, allow_private: bool = False) -> str:
    """`url` if it may receive webhooks: https (http only with `allow_private`), a host, no credentials, and
    a host that resolves only to public addresses unless `allow_private`."""
    url = (url or "").strip()
    if not url:
        raise ValidationError("url is required", details={"field": "url"})
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"url is longer than {MAX_URL_LENGTH} characters", details={"field": "url"})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"url is not a valid URL: {exc}", details={"field": "url"}) from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        hint = "" if allow_private or parts.scheme != "http" else f" ({PRIVATE_SETTING} allows http)"
        raise ValidationError(
            f"url must use {' or '.join(allowed)}, not {parts.scheme or 'no scheme'!r}{hint}",
            details={"field": "url"},
        )
    if not parts.hostname:
        raise ValidationError("url has no host", details={"field": "url"})
    if parts.username or parts.password:
        raise ValidationError("url must not carry credentials", details={"field": "url"})
    if parts.fragment:
        raise ValidationError("url must not have a fragment", details={"field": "url"})
    try:
        check_host(
            parts.hostname, port or (443 if parts.scheme == "https" else 80), allow_private=allow_private
        )
    except BlockedAddressError as exc:
        hint = (
            ""
            if allow_private or isinstance(exc, UnresolvedHostError)
            else f" ({PRIVATE_SETTING} allows private, loopback and link-local addresses)"
        )
        raise ValidationError(f"url refused: {exc}{hint}", details={"field": "url"}) from None
    except UnicodeError:  # a host name IDNA cannot encode (empty label, label over 63 characters)
        raise ValidationError("url has an invalid host name", details={"field": "url"}) from None
    return url


def validate_event_types(event_types: Iterable[str]) -> list[str]:
    """Event type filters: `*` (everything), an exact type (`order.confirmed`) or a prefix (`order.*`)."""
    cleaned: list[str] = []
    for raw in event_types:
        value = str(raw).strip()
        if len(value) > MAX_EVENT_TYPE_LENGTH:
            raise ValidationError(
                f"an event type is longer than {MAX_EVENT_TYPE_LENGTH} characters",
                details={"field": "event_types"},
            )
        if value != "*" and not _EVENT_TYPE.fullmatch(value):
            raise ValidationError(
                f"event type {value!r} is not '*', a dotted type like 'order.confirmed' or a prefix like 'order.*'",
                details={"field": "event_types"},
            )
        if value not in cleaned:
            cleaned.append(value)
        if len(cleaned) > MAX_EVENT_TYPES:
            raise ValidationError(
                f"event_types may name at most {MAX_EVENT_TYPES} types", details={"field": "event_types"}
            )
    if not cleaned:
        raise ValidationError(
            "event_types must name at least one type (or '*')", details={"field": "event_types"}
        )
    return cleaned


def matches(event_types: Sequence[str], event_type: str) -> bool:
    """True when the filter list subscribes to `event_type`."""
    for pattern in event_types:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def create_endpoint(
    session: Session,
    box: SecretBox,
    *,
    url: str,
    event_types: Iterable[str] = ("*",),
    platform_client_id: int | None = None,
    allow_private: bool = False,
) -> EndpointSecret:
    """A new enabled endpoint; the plain secret is in the result and nowhere else. A client's endpoints are
    counted under its row's lock, so concurrent creates cannot pass `MAX_ENDPOINTS_PER_CLIENT` together."""
    checked_url = validate_url(url, allow_private=allow_private)
    types = validate_event_types(event_types)
    if platform_client_id is not None:
        _check_room(session, platform_client_id)
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        public_id=f"we_{secrets.token_hex(12)}",
        platform_client_id=platform_client_id,
        url=checked_url,
        event_types=types,
        secret_encrypted=box.encrypt(secret),
        enabled=True,
        consecutive_failures=0,
    )
    session.add(endpoint)
    session.flush()
    logger.info(
        "webhook endpoint created",
        extra={"endpoint_id": endpoint.id, "public_id": endpoint.public_id, "event_types": types},
    )
    return EndpointSecret(endpoint, secret)


def _check_room(session: Session, platform_client_id: int) -> None:
    session.execute(
        select(PlatformClient.id).where(PlatformClient.id == platform_client_id).with_for_update()
    )
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.platform_client_id == platform_client_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_CLIENT:
        raise EndpointLimitError(MAX_ENDPOINTS_PER_CLIENT)


def get_endpoint(
    session: Session, endpoint_id: int, *, platform_client_id: int | None = None
) -> WebhookEndpoint:
    """The endpoint, or NotFoundError; with `platform_client_id`, only that client's endpoints are found."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (
        platform_client_id is not None and endpoint.platform_client_id != platform_client_id
    ):
        raise NotFoundError(f"webhook endpoint {endpoint_id} not found", code="endpoint_not_found")
    return endpoint


def list_endpoints(session: Session, *, platform_client_id: int | None = None) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    if platform_client_id is not None:
        query = query.where(WebhookEndpoint.platform_client_id == platform_client_id)
    return list(session.scalars(query))


def update_endpoint(
    session: Session,
    endpoint_id: int,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    enabled: bool | None = None,
    allow_private: bool = False,
    platform_client_id: int | None = None,
) -> WebhookEndpoint:
    """Change what is given; enabling an endpoint also closes its breaker and clears the disable reason."""
    endpoint = get_endpoint(session, endpoint_id, platform_client_id=platform_client_id)
    if url is not None:
        endpoint.url = validate_url(url, allow_private=allow_private)
    if event_types is not None:
        endpoint.event_types = validate_event_types(event_types)
    if enabled is not None:
        if enabled and not endpoint.enabled:
            endpoint.disabled_reason = None
            endpoint.consecutive_failures = 0
            endpoint.circuit_open_until = None
        elif not enabled and endpoint.enabled:
            endpoint.disabled_reason = "disabled by request"
        endpoint.enabled = enabled
    session.flush()
    logger.info("webhook endpoint updated", extra={"endpoint_id": endpoint.id, "enabled": endpoint.enabled})
    return endpoint


def delete_endpoint(session: Session, endpoint_id: int, *, platform_client_id: int | None = None) -> None:
    """Delete the endpoint; its deliveries and their attempts go with it (ON DELETE CASCADE)."""
    endpoint = get_endpoint(session, endpoint_id, platform_client_id=platform_client_id)
    session.delete(endpoint)
    session.flush()
    logger.info("webhook endpoint deleted", extra={"endpoint_id": endpoint_id})


def rotate_secret(
    session: Session,
    box: SecretBox,
    endpoint_id: int,
    *,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
    platform_client_id: int | None = None,
) -> EndpointSecret:
    """A new secret (returned once); the old one keeps signing, as a second signature, for `grace`."""
    if grace < timedelta(0):
        raise ValidationError("grace must not be negative", details={"field": "grace"})
    endpoint = get_endpoint(session, endpoint_id, platform_client_id=platform_client_id)
    secret = generate_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = (now or datetime.now(UTC)) + grace
    endpoint.secret_encrypted = box.encrypt(secret)
    session.flush()
    logger.info(
        "webhook endpoint secret rotated",
        extra={
            "endpoint_id": endpoint.id,
            "previous_expires_at": endpoint.previous_secret_expires_at.isoformat(),
        },
    )
    return EndpointSecret(endpoint, secret)


def signing_secrets(
    box: SecretBox, endpoint: WebhookEndpoint, *, now: datetime | None = None
) -> tuple[str, str | None]:
    """(current secret, previous secret if still within its grace period) in clear, for signing."""
    current = box.decrypt_text(endpoint.secret_encrypted)
    previous: str | None = None
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > (now or datetime.now(UTC)):
        previous = box.decrypt_text(endpoint.previous_secret_encrypted)
    return current, previous
