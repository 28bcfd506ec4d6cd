"""Standard Webhooks signatures: `whsec_` secrets and the `webhook-id/-timestamp/-signature` headers."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24


def generate_secret(nbytes: int = SECRET_BYTES) -> str:
    """A new endpoint secret: `whsec_` + base64 of `nbytes` (24 to 64) random bytes."""
    if not MIN_SECRET_BYTES <= nbytes <= 64:
        raise ValueError("webhook secrets are 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def is_valid_secret(secret: str) -> bool:
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        return False
    return MIN_SECRET_BYTES <= len(raw) <= 64


def sign(
    msg_id: str,
    body: bytes,
    secret: str,
    *,
    previous_secret: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`.

    `webhook-signature` holds one `v1,<base64>` per secret, space-separated: the current secret first, then
    `previous_secret` while it is in its rotation grace period, so receivers holding either one verify.
    """
    moment = (timestamp or datetime.now(UTC)).astimezone(UTC)
    text = body.decode("utf-8")
    signatures = [Webhook(secret).sign(msg_id, moment, text)]
    if previous_secret and previous_secret != secret:
        signatures.append(Webhook(previous_secret).sign(msg_id, moment, text))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
