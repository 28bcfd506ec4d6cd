"""Whether a merchant's store still sends its notifications to Storelink: the `webhooks_missing` problem.

The address the store was pointed at is the one install or connect used: `<PUBLIC_URL>/webhooks/<kind>` for a
store installed by redirect, `<PUBLIC_URL>/webhooks/<kind>/<merchant id>` for one connected with keys. Checked
by the scheduled reconciliation through the adapter's optional `ChecksWebhooks` surface.
"""

from __future__ import annotations

import logging

from connector.domain import registry
from connector.domain.ports import ChecksWebhooks, Installable, StoreAdapter
from connector.infra import problems, runtime
from connector.infra.models import Merchant
from connector.merchants.connect import callback_url

logger = logging.getLogger(__name__)


def expected_callback(rt: runtime.Runtime, merchant: Merchant) -> str | None:
    """Where the merchant's store sends its notifications, or None without PUBLIC_URL."""
    base = rt.settings.public_url.rstrip("/")
    if not base:
        return None
    if isinstance(registry.adapter_class(merchant.kind), Installable):
        return f"{base}/webhooks/{merchant.kind}"
    return callback_url(base, merchant.kind, merchant.id)


def check_subscriptions(rt: runtime.Runtime, merchant: Merchant, adapter: StoreAdapter) -> list[str] | None:
    """The topics the store no longer sends to Storelink (raising or clearing `webhooks_missing`), or None
    when that cannot be told (no PUBLIC_URL, or the store cannot say)."""
    url = expected_callback(rt, merchant)
    if url is None or not isinstance(adapter, ChecksWebhooks):
        return None
    missing = adapter.missing_webhooks(url)
    if missing:
        problems.report(
            rt.db,
            problems.WEBHOOKS_MISSING,
            merchant_id=merchant.id,
            detail=f"not subscribed at {url}: {', '.join(missing)}",
        )
    else:
        problems.resolve(rt.db, [problems.WEBHOOKS_MISSING], merchant_id=merchant.id)
    return missing
