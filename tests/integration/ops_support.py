"""Shared by the problem list and resync tests: a Shopify merchant on the emulator with its catalog synced,
the runtime variants they need, and `storelink resync` served by a real worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from redis import Redis
from sqlalchemy import select

from config.settings import Settings
from connector.bench.shopify import add_shopify_merchant
from connector.catalog import syncs
from connector.infra import runtime
from connector.infra.models import InventoryLevel, SyncRun, Variant
from connector.infra.models_ops import Problem
from connector.orders import push
from connector.sandbox.shopify import Server, serve
from tests.helpers import drain, sync_now

PUBLIC_URL = "https://storelink.example"


@dataclass
class Shop:
    """The emulator and the merchant whose store it is."""

    server: Server
    merchant_id: int

    def variant_item(self, rt: runtime.Runtime, variant_id: int) -> int:
        """The emulator's inventory item id of a stored variant."""
        with rt.db.session() as session:
            external = session.scalar(select(Variant.external_id).where(Variant.id == variant_id))
        assert external is not None
        number = int(external.rsplit("/", 1)[1])
        return self.server.store.variants[number].inventory_item.legacy_resource_id

    def set_store_stock(self, rt: runtime.Runtime, variant_id: int, available: int) -> None:
        """Change the store's stock without telling Storelink (no webhook): a drift."""
        self.server.store.set_inventory(self.variant_item(rt, variant_id), None, available, notify=False)


def runtime_with(settings: Settings, redis: Redis, **changes: object) -> Iterator[runtime.Runtime]:
    """A runtime whose settings differ from the test's by `changes`; adapters cached by the push job reset."""
    instance = runtime.install(
        runtime.Runtime(settings=settings.model_copy(update=changes), redis_url=settings.redis_url)
    )
    push._adapters.clear()
    yield instance
    instance.close()
    runtime._current = None
    push._adapters.clear()


def shopify_shop(rt: runtime.Runtime, products: int = 3, variants: int = 2) -> Iterator[Shop]:
    """The emulator with a seeded catalog, and a merchant whose first full sync ran."""
    with serve(bulk_step_delay=0.0) as server:
        server.store.seed_catalog(products, variants, available=(10, 10))
        merchant_id = add_shopify_merchant(rt, server.url)
        first = sync_now(rt, merchant_id)
        assert first.status == "succeeded", first.error
        yield Shop(server, merchant_id)


def variant_ids(rt: runtime.Runtime, merchant_id: int) -> list[int]:
    with rt.db.session() as session:
        return list(
            session.scalars(select(Variant.id).where(Variant.merchant_id == merchant_id).order_by(Variant.id))
        )


def stored_stock(rt: runtime.Runtime, variant_id: int) -> int | None:
    with rt.db.session() as session:
        return session.scalar(select(InventoryLevel.available).where(InventoryLevel.variant_id == variant_id))


def run_kind(rt: runtime.Runtime, merchant_id: int, kind: str, **options: object) -> SyncRun:
    """Record a run of `kind`, let a real worker run it, and read it back."""
    run = syncs.request_sync(rt, merchant_id, kind=kind, full=False, **options)  # type: ignore[arg-type]
    drain(rt)
    return syncs.get_run(rt, run.id)


def open_keys(
    rt: runtime.Runtime, merchant_id: int | None = None, endpoint_id: int | None = None
) -> set[str]:
    """Keys of the problems showing for the merchant (or endpoint)."""
    with rt.db.session() as session:
        query = select(Problem.key).where(Problem.cleared_at.is_(None), Problem.raised_at.is_not(None))
        if merchant_id is not None:
            query = query.where(Problem.merchant_id == merchant_id)
        if endpoint_id is not None:
            query = query.where(Problem.endpoint_id == endpoint_id)
        return set(session.scalars(query))


def resync_served(cli: Callable[..., str], rt: runtime.Runtime, *args: str, expect: int = 0) -> str:
    """`storelink resync ...` while a real worker (in this thread; the command runs in another) serves it."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["out"] = cli("resync", *args, expect=expect)
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    command = threading.Thread(target=run)
    command.start()
    deadline = time.monotonic() + 60
    while command.is_alive() and time.monotonic() < deadline:
        drain(rt)
        command.join(0.1)
    command.join(5)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return str(outcome["out"])
