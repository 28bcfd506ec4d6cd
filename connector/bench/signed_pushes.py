"""Signed store webhooks prepared as request bytes for a load process: the `webhooks` and `scale` benchmarks'
floods of inventory deliveries to Storelink's feed receiver (or the bare one beside it).

`build_requests(spec, index)` runs inside each load process (`connector.bench.load.flood`, which pickles it
with its spec), so this module imports only the standard library and light modules of the project.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connector.bench.load import http_request
from connector.sandbox.feed_signing import FeedSigner


def build_requests(spec: dict[str, Any], index: int) -> list[bytes]:
    """Process `index`'s share of signed inventory deliveries: one item each, store time increasing.

    `spec` holds the receiver's `port`, the `count` of requests, a `tag` that makes webhook ids unique and
    the `merchants` as (merchant id, webhook secret, variant refs)."""
    port, count = spec["port"], spec["count"]
    merchants = spec["merchants"]
    signers = [FeedSigner(secret) for _, secret, _ in merchants]
    paths = [f"/webhooks/feed/{mid}" for mid, _, _ in merchants]
    base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)
    out = []
    for n in range(count):
        slot = n % len(merchants)
        refs = merchants[slot][2]
        delivery = signers[slot].inventory(
            [(refs[(n // len(merchants)) % len(refs)], 1000 + n)],
            at=base + timedelta(milliseconds=n),
            webhook_id=f"msg_{spec['tag']}_{index}_{n}",
        )
        out.append(http_request(paths[slot], delivery.headers, delivery.body, port))
    return out
