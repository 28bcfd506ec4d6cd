"""The demo's live sale: a live session of the Shopify brand with the flash-sale hoodie pinned (a flash price,
limited units, a per-buyer limit), raced by a few hundred simulated buyers, each on a connection of its own,
through `storelink up`'s web front; every third buyer comes through a creator's link (carries its click)."""

from __future__ import annotations

import logging

from connector.bench import buyers
from connector.demo.creators import LINKED_BUYER_EVERY
from connector.demo.stage import Stage

logger = logging.getLogger(__name__)


def flash_sale(stage: Stage) -> str:
    """Session, pin, start; the race; the end of the session (what was not sold goes back to stock)."""
    variant = stage.facts["flash_variant"]
    sizes = stage.sizes
    api = stage.platform
    session = api.post(
        "/v1/live-sessions", {"merchant_id": stage.merchants["shopify"], "title": "Friday night drop"}
    )
    path = f"/v1/live-sessions/{session['id']}"
    pin = api.post(
        f"{path}/pins",
        {
            "variant_id": variant["id"],
            "flash_price_minor": buyers.FLASH_PRICE_MINOR,
            "allocation": sizes.allocation,
            "per_buyer_limit": sizes.per_buyer_limit,
        },
    )
    api.post(f"{path}/start", {})
    clicks = tuple(
        click for link in stage.links if link.product_id == variant["product_id"] for click in link.click_ids
    )
    spec = buyers.SaleSpec(
        port=stage.up.port,
        auth=api.key,
        live_session_id=int(session["id"]),
        variant_id=int(variant["id"]),
        buyers=sizes.buyers,
        attempts=sizes.buyers * sizes.attempts_per_buyer,
        tag="flash",
        click_ids=clicks,
        linked_every=LINKED_BUYER_EVERY,
    )
    result = buyers.race(spec)
    api.post(f"{path}/end", {})
    stage.facts["live"] = {
        "session_id": int(session["id"]),
        "pin_id": int(pin["id"]),
        "allocation": sizes.allocation,
        "attempts": result.sent,
        "accepted": result.statuses.get(buyers.ACCEPTED, 0),
        "refused": result.statuses.get(buyers.REFUSED, 0),
        "other": result.sent
        - result.statuses.get(buyers.ACCEPTED, 0)
        - result.statuses.get(buyers.REFUSED, 0),
        "rate": result.rate,
    }
    facts = stage.facts["live"]
    logger.info("flash sale done", extra=facts)
    return (
        f"{sizes.buyers} buyers sent {facts['attempts']:,} purchase attempts ({facts['rate']:,.0f}/s): "
        f"{facts['accepted']} bought, {facts['refused']} refused (sold out or over the limit)"
    )
