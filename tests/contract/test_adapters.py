"""The contract every registered store adapter keeps, run against each entry of `storelink.adapters`.

Each adapter kind supplies a factory here that builds a working instance against local material (a
generated feed, a sandbox emulator); a registered kind without one fails the suite, so no adapter ships
untested.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.domain import registry
from connector.domain.catalog import InventoryLevel, Product, clean_collections, clean_tags
from connector.domain.errors import PermanentError, StorelinkError, ValidationError
from connector.domain.money import Money
from connector.domain.orders import ExternalOrderRef, Order, OrderLine
from connector.domain.ports import Capability, HttpOptions, StoreAdapter
from connector.sandbox import shopify as shopify_sandbox
from connector.sandbox import walmart as walmart_sandbox
from connector.sandbox.feeds import write_feed

Factory = Callable[[pytest.FixtureRequest, Path], tuple[dict[str, Any], dict[str, str]]]


@pytest.fixture(scope="module")
def shopify_shop() -> Iterator[shopify_sandbox.Server]:
    """One emulated shop for the module: 10 products of 3 variants at its primary location (tagged), three of
    them in a collection."""
    with shopify_sandbox.serve() as server:
        products = server.store.seed_catalog(10, 3)
        server.store.add_collection("Summer", products=[p.id for p in products[:3]])
        yield server


def _feed(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    feed = write_feed(tmp_path / "feed.csv", 40, variants_per_product=4, labels=True)
    return {"url": str(feed)}, {}


def _shopify(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    server: shopify_sandbox.Server = request.getfixturevalue("shopify_shop")
    config = {
        "shop": server.store.shop.myshopify_domain,
        "base_url": server.url,
        "location": str(server.store.primary_location.legacy_resource_id),
    }
    app = server.emulator.client
    return config, {"access_token": "shpat_sandbox", "client_secret": app.client_secret}


@pytest.fixture(scope="module")
def walmart_seller() -> Iterator[walmart_sandbox.Server]:
    """One emulated Walmart seller for the module: 30 items, enrolled in Multichannel with one channel."""
    with walmart_sandbox.serve() as server:
        server.store.seed_catalog(30)
        server.store.add_channel("Storelink", channel_id="STORELINK1")
        yield server


def _walmart(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    server: walmart_sandbox.Server = request.getfixturevalue("walmart_seller")
    emulator = server.emulator
    config = {
        "client_id": emulator.client_id,
        "base_url": server.url,
        "mcs_enrolled": True,
        "order_channel_id": "STORELINK1",
    }
    return config, {"client_id": emulator.client_id, "client_secret": emulator.client_secret}


FACTORIES: dict[str, Factory] = {"feed": _feed, "shopify": _shopify, "walmart": _walmart}
UNTAGGED: frozenset[str] = frozenset({"walmart"})
"""Kinds whose store has no field for a product's tags (Walmart's item API has none)."""


@pytest.fixture(params=registry.kinds())
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def adapter(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreAdapter:
    assert kind in FACTORIES, f"adapter {kind!r} is registered but has no contract-test factory"
    config, credentials = FACTORIES[kind](request, tmp_path)
    cls = registry.adapter_class(kind)
    return registry.create_adapter(
        kind,
        cls.validate_config(config),
        credentials,
        HttpOptions(timeout=5, allow_files=True, allow_private=True),
    )


def test_the_registry_finds_installed_adapters():
    assert "feed" in registry.kinds()
    with pytest.raises(ValidationError):
        registry.adapter_class("no-such-store")


def test_declares_itself(kind, adapter):
    assert isinstance(adapter, StoreAdapter)
    assert type(adapter).kind == kind
    assert adapter.capabilities and all(isinstance(c, Capability) for c in adapter.capabilities)


def test_rejects_bad_config_with_a_validation_error(kind):
    with pytest.raises(ValidationError):
        registry.adapter_class(kind).validate_config({})


def test_store_ref_is_stable(kind, request, tmp_path):
    config, _ = FACTORIES[kind](request, tmp_path)
    cls = registry.adapter_class(kind)
    normalized = cls.validate_config(config)
    assert cls.store_ref(normalized) == cls.store_ref(cls.validate_config(normalized))


def test_connection_check_passes(adapter):
    adapter.check_connection()


def test_catalog_streams_valid_products(adapter):
    stream = adapter.iter_catalog(None)
    assert not isinstance(stream, list | tuple), "the catalog must stream, not be built whole"
    products = list(stream)
    assert products and all(isinstance(p, Product) for p in products)
    variant_ids = [v.external_id for p in products for v in p.variants]
    assert len(variant_ids) == len(set(variant_ids)), "a variant id appears twice in one pass"
    for product in products:
        assert product.external_id and isinstance(product.external_id, str)
        for variant in product.variants:
            assert isinstance(variant.price, Money) and variant.price.minor >= 0
            assert variant.quantity is None or variant.quantity >= 0
    assert adapter.iter_catalog_errors() == []
    assert set(adapter.catalog_skipped_refs()) == set()


def test_catalog_groups_are_normalized(kind, adapter):
    """Tags and collections come as `clean_tags` and `clean_collections` make them, from what the store has."""
    products = list(adapter.iter_catalog(None))
    for product in products:
        assert product.tags == clean_tags(product.tags)
        assert product.collections == clean_collections(product.collections)
    assert any(product.collections for product in products)
    assert any(product.tags for product in products) is (kind not in UNTAGGED)


def test_content_hash_is_deterministic(adapter):
    first = [(p.content_hash(), [v.content_hash() for v in p.variants]) for p in adapter.iter_catalog(None)]
    second = [(p.content_hash(), [v.content_hash() for v in p.variants]) for p in adapter.iter_catalog(None)]
    assert first == second


def test_inventory_reads_match_the_catalog(adapter):
    if Capability.INVENTORY_READ not in adapter.capabilities:
        pytest.skip("no inventory reads")
    variants = list(itertools.islice((v for p in adapter.iter_catalog(None) for v in p.variants), 5))
    levels = adapter.get_inventory([v.external_id for v in variants])
    assert all(isinstance(level, InventoryLevel) for level in levels)
    by_id = {level.variant_external_id: level.available for level in levels}
    assert by_id == {v.external_id: v.quantity for v in variants}


def test_unsupported_operations_are_permanent_errors(adapter):
    order = Order(id="ord_1", currency="USD", lines=(OrderLine("x", 1, Money(100, "USD")),))
    calls: list[tuple[Capability, Callable[[], object]]] = [
        (Capability.ORDER_PUSH, lambda: adapter.create_order(order, "key-1")),
        (Capability.ORDER_PUSH, lambda: adapter.find_order("key-1")),
        (Capability.ORDER_PUSH, lambda: adapter.cancel_order(ExternalOrderRef("1"))),
        (Capability.INVENTORY_WRITE, lambda: adapter.set_inventory([])),
        (Capability.WEBHOOKS, lambda: adapter.parse_webhook("products/update", {}, b"{}")),
    ]
    for capability, call in calls:
        if capability in adapter.capabilities:
            continue
        with pytest.raises(PermanentError):
            call()


def test_webhook_verification_rejects_unsigned_bodies(adapter):
    assert adapter.verify_webhook({}, b'{"id": 1}') is False
    assert (
        adapter.verify_webhook({"x-shopify-hmac-sha256": "AAAA", "webhook-signature": "v1,AAAA"}, b"\xff")
        is False
    )


def test_webhook_envelopes_refuse_malformed_deliveries(adapter):
    if Capability.WEBHOOKS not in adapter.capabilities:
        pytest.skip("no webhooks")
    ref = type(adapter).webhook_store_ref({})
    assert ref is None or isinstance(ref, str)
    for body in (b"", b"{not json", b"[]", b"\xff\xfe"):
        with pytest.raises(PermanentError):
            adapter.webhook_envelope({}, body)


def test_errors_are_storelink_errors(kind, request, tmp_path):
    cls = registry.adapter_class(kind)
    config, credentials = FACTORIES[kind](request, tmp_path)
    broken = dict(cls.validate_config(config))
    if kind == "feed":
        (tmp_path / "feed.csv").unlink()
    if kind == "shopify":
        credentials = {**credentials, "access_token": "shpat_revoked"}
    if kind == "walmart":
        credentials = {**credentials, "client_secret": "revoked"}
    with pytest.raises(StorelinkError):
        registry.create_adapter(
            kind, broken, credentials, HttpOptions(timeout=5, allow_files=True, allow_private=True)
        ).check_connection()
