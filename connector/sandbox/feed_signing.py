"""A feed store's change pushes as bytes: signed Standard Webhooks deliveries for `/webhooks/feed/<id>`.

`FeedSigner` builds the exact bytes a feed store sends (see `adapters.feed.webhook`). It imports only the
standard library and the Standard Webhooks signer, so a benchmark's load process can prepare signed
deliveries without loading an HTTP client; `connector.sandbox.feed_push.FeedPusher` also sends them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook


def new_secret() -> str:
    """A fresh Standard Webhooks secret (`whsec_` and 24 random bytes, base64)."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signed delivery: what goes on the wire."""

    webhook_id: str
    headers: dict[str, str]
    body: bytes


class FeedSigner:
    """Signs deliveries with a merchant's `webhook_secret`."""

    def __init__(self, secret: str) -> None:
        self._signer = Webhook(secret)
        self._counter = 0

    def delivery(
        self,
        type_: str,
        data: Mapping[str, Any],
        *,
        at: datetime | None = None,
        webhook_id: str | None = None,
        signed_at: datetime | None = None,
    ) -> Delivery:
        """The signed bytes of one delivery; `at` is the store time of the change (default now)."""
        self._counter += 1
        msg_id = webhook_id or f"msg_{os.getpid()}_{self._counter}_{os.urandom(4).hex()}"
        when = at or datetime.now(UTC)
        body = json.dumps({"type": type_, "timestamp": when.isoformat(), "data": dict(data)}).encode()
        stamp = signed_at or datetime.now(UTC)
        signature = self._signer.sign(msg_id, stamp, body.decode())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signature,
        }
        return Delivery(msg_id, headers, body)

    def inventory(
        self,
        items: Iterable[tuple[str, int | None]],
        *,
        at: datetime | None = None,
        webhook_id: str | None = None,
    ) -> Delivery:
        """An `inventory.updated` delivery for (variant id, quantity) pairs."""
        return self.delivery(
            "inventory.updated",
            {"items": [{"id": ref, "quantity": quantity} for ref, quantity in items]},
            at=at,
            webhook_id=webhook_id,
        )
