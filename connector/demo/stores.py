"""The demo's stores: the platform's API client and webhook endpoint, a Shopify shop installed through the
real OAuth redirect flow, a Walmart seller connected with its API keys through the Platform API, a product
feed, and the three catalogs synced by `storelink up`'s workers."""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

import requests

from connector.catalog import syncs
from connector.demo.api import TIMEOUT, ApiError, PlatformApi
from connector.demo.services import ServiceError
from connector.demo.stage import Stage
from connector.infra.models import Merchant, SyncRun
from connector.merchants import clients
from connector.merchants.records import create_merchant
from connector.sandbox.feeds import write_feed

logger = logging.getLogger(__name__)

CLIENT_NAME: Final = "video-platform"
FEED_NAME: Final = "demo-feed"
WALMART_NAME: Final = "walmart-seller"
FEED_VARIANTS: Final = 3
SYNC_TIMEOUT: Final = 240.0


def platform_client(stage: Stage) -> str:
    """The platform's API client (as `storelink clients add` makes it) and its webhook endpoint at the
    platform receiver, subscribed to every event; the receiver verifies with the endpoint's secret."""
    with stage.rt.db.session() as session:
        client, key = clients.create_client(session, CLIENT_NAME)
        stage.client_id = client.id
    stage.api = PlatformApi(stage.web_url, key)
    receiver = stage.emulators.platform
    endpoint = stage.platform.post("/v1/webhook-endpoints", {"url": receiver.url, "event_types": ["*"]})
    receiver.receiver.set_secrets([endpoint["secret"]])
    return f"client {CLIENT_NAME}, webhook endpoint {receiver.url}"


def _follow(url: str, expect: int, what: str) -> requests.Response:
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    if response.status_code != expect:
        raise ApiError("GET", urlsplit(url).path, response.status_code, response.text)
    logger.info("install redirect followed", extra={"step": what, "status": response.status_code})
    return response


def install_shopify(stage: Stage) -> str:
    """The merchant's browser, step by step: Storelink's install address redirects to the shop's grant page,
    which redirects back to Storelink's callback with a signed code; the callback makes the merchant."""
    shop = stage.emulators.shopify.store.shop.myshopify_domain
    install = _follow(f"{stage.web_url}/shopify/install?shop={shop}", 302, "install")
    grant = _follow(install.headers["Location"], 302, "grant")
    callback = grant.headers["Location"]
    if not callback.startswith(stage.web_url):
        raise ServiceError(f"the shop sent the merchant back to {callback}, not to Storelink")
    done = _follow(callback, 201, "callback").json()
    merchant_id = int(done["merchant_id"])
    with stage.rt.db.session() as session:  # as `storelink merchants assign` does
        merchant = session.get(Merchant, merchant_id)
        if merchant is not None:
            merchant.platform_client_id = stage.client_id
    stage.merchants["shopify"] = merchant_id
    stage.runs["shopify"] = int(done["sync_run_id"])
    return f"{shop} installed, {len(done['webhook_topics'])} webhook topics subscribed"


def connect_walmart(stage: Stage) -> str:
    """`POST /v1/merchants/walmart` with the seller's keys: checked with Walmart before anything is stored."""
    seller = stage.emulators.walmart
    connected = stage.platform.post(
        "/v1/merchants/walmart",
        {
            "name": WALMART_NAME,
            "client_id": seller.emulator.client_id,
            "client_secret": seller.emulator.client_secret,
            "seller_id": seller.store.partner_id,
        },
    )
    stage.merchants["walmart"] = int(connected["id"])
    stage.runs["walmart"] = int(connected["sync_run_id"])
    enrolled = "on Multichannel Solutions" if connected.get("mcs_enrolled") else "not on Multichannel"
    return f"seller {seller.store.partner_id} connected, {enrolled}"


def connect_feed(stage: Stage) -> str:
    """A product feed (a generated CSV file), added as `storelink merchants add feed` does."""
    path = write_feed(stage.data_dir / "demo" / "feed.csv", stage.sizes.feed_products * FEED_VARIANTS)
    with stage.rt.db.session() as session:
        merchant = create_merchant(
            session,
            stage.rt.secrets,
            kind="feed",
            name=FEED_NAME,
            config={"url": str(path)},
            platform_client_id=stage.client_id,
        )
        stage.merchants["feed"] = merchant.id
    stage.runs["feed"] = syncs.request_sync(stage.rt, stage.merchants["feed"]).id
    return f"{stage.sizes.feed_products:,} products in {path.name}"


def wait_for_syncs(stage: Stage) -> str:
    """Each store's first full sync, run by the workers of `storelink up`, until it succeeded."""

    def finished() -> dict[str, SyncRun] | None:
        with stage.rt.db.session() as session:
            runs = {name: session.get(SyncRun, run_id) for name, run_id in stage.runs.items()}
        for name, run in runs.items():
            if run is not None and run.status == "failed":
                raise ServiceError(f"the {name} catalog sync (run {run.id}) failed: {run.error}")
        if all(run is not None and run.status == "succeeded" for run in runs.values()):
            return {name: run for name, run in runs.items() if run is not None}
        return None

    done: dict[str, SyncRun] = stage.wait(finished, SYNC_TIMEOUT, "the catalog syncs")
    return ", ".join(f"{name} {run.created:,} variants" for name, run in done.items())
