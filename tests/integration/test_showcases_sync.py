"""Rule showcases follow the catalog as it syncs and stock as store webhooks change it; what a viewer sees is
announced once per change, coalesced per showcase, and verified at the platform's receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.infra import runtime
from connector.infra.models import Product, Variant
from connector.merchants.records import create_merchant
from connector.sandbox.feed_push import FeedPusher, new_secret
from connector.sandbox.feeds import write_feed
from connector.sandbox.platform import Server
from tests.helpers import ApiClient, build_app, drain, rewrite_feed, sync_now
from tests.integration import showcase_support
from tests.integration.showcase_support import create, product_ids, view
from tests.integration.showcase_support import showcase_events as stored_events

Runtime = runtime.Runtime
platform = showcase_support.platform  # the platform's receiver, subscribed to showcase events (a fixture)
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


class Brand:
    """A feed merchant of the API client, synced, with a webhook secret for stock pushes."""

    def __init__(self, rt: Runtime, client: ApiClient, tmp_path: Path, rows: int = 30) -> None:
        self.rt, self.client = rt, client
        self.feed = write_feed(tmp_path / "feed.csv", rows, variants_per_product=3)
        self.secret = new_secret()
        with rt.db.session() as session:
            self.merchant_id = create_merchant(
                session,
                rt.secrets,
                kind="feed",
                name="brand",
                config={"url": str(self.feed)},
                credentials={"webhook_secret": self.secret},
                platform_client_id=client.id,
            ).id
        sync_now(rt, self.merchant_id)
        self.app = build_app(rt)
        self.pushes = 0

    def http(self):  # type: ignore[no-untyped-def]
        return self.app.test_client()

    def showcase(self, **body):  # type: ignore[no-untyped-def]
        return create(
            self.http(), self.client.headers, owner_kind="merchant", merchant_id=self.merchant_id, **body
        )

    def items(self, showcase_id: int) -> list[dict]:
        return view(self.http(), self.client.headers, showcase_id)["items"]

    def push(self, items: list[tuple[str, int]]) -> None:
        pusher = FeedPusher(f"/webhooks/feed/{self.merchant_id}", self.secret)
        self.pushes += 1  # each push is a later store change than the one before
        delivered = pusher.inventory(items, at=T0 + timedelta(seconds=self.pushes))
        response = self.http().post(pusher.url, data=delivered.body, headers=delivered.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        drain(self.rt)

    def skus(self, external_product: str) -> list[str]:
        pid = product_ids(self.rt, self.merchant_id)[external_product]
        with self.rt.db.session() as session:
            return list(session.scalars(select(Variant.external_id).where(Variant.product_id == pid)))


@pytest.fixture
def brand(rt: Runtime, api_client: ApiClient, tmp_path: Path, platform: Server) -> Brand:
    return Brand(rt, api_client, tmp_path)


def _canonical(events: list[tuple[str, dict]]) -> list[str]:
    return sorted(json.dumps(event, sort_keys=True) for event in events)


def received(platform: Server, showcase_id: int) -> list[tuple[str, dict]]:
    return [
        (r.type, r.data) for r in platform.receiver.received() if r.data.get("showcase_id") == showcase_id
    ]


def test_a_rule_showcase_follows_added_changed_and_deleted_products(
    rt: Runtime, brand: Brand, platform: Server
):
    made = brand.showcase(rule={"sort": "newest"}, out_of_stock="sold_out")
    sid = made["id"]
    ids = product_ids(rt, brand.merchant_id)
    first = brand.items(sid)
    assert [i["product_id"] for i in first] == sorted(ids.values(), reverse=True)  # newest first
    assert all(not i["placed"] and i["price"]["amount_minor"] > 0 for i in first)
    drain(rt)
    assert [t for t, _ in received(platform, sid)] == ["showcase.updated"]

    # The store adds a product, deletes P-000001 and changes P-000002's price.
    write_feed(brand.feed, 33, variants_per_product=3)

    def change(i: int, row: dict[str, str]) -> dict[str, str] | None:
        if row["item_group_id"] == "P-000001":
            return None
        if row["item_group_id"] == "P-000002":
            amount, currency = row["price"].split()
            row["price"], row["sale_price"] = f"{float(amount) + 5:.2f} {currency}", ""
        return row

    rewrite_feed(brand.feed, change)
    before = {i["product_id"]: i for i in first}
    sync_now(rt, brand.merchant_id)
    drain(rt)

    after = product_ids(rt, brand.merchant_id)
    items = brand.items(sid)
    shown = [i["product_id"] for i in items]
    assert shown[0] == after["P-000011"] and ids["P-000001"] not in shown
    changed = next(i for i in items if i["product_id"] == ids["P-000002"])
    assert (
        changed["price"] != before[ids["P-000002"]]["price"]
        or changed["sale_price"] != before[ids["P-000002"]]["sale_price"]
    )

    announced = received(platform, sid)[1:]
    assert sorted(t for t, _ in announced) == ["showcase.item_updated", "showcase.updated"]
    updated = next(d for t, d in announced if t == "showcase.updated")
    assert updated["added"] == [{"product_id": after["P-000011"], "position": 0}]
    assert updated["removed"] == [ids["P-000001"]] and updated["moved"] == []
    item_updated = next(d for t, d in announced if t == "showcase.item_updated")
    assert [i["product_id"] for i in item_updated["items"]] == [ids["P-000002"]]
    # Each stored event was delivered exactly once.
    assert _canonical(stored_events(rt, sid)) == _canonical(received(platform, sid))

    # Archived or deleted products drop out; nothing changes again: nothing more is sent.
    sync_now(rt, brand.merchant_id)
    drain(rt)
    assert len(received(platform, sid)) == 3


def test_a_resync_changing_every_price_is_announced_once(
    rt: Runtime, api_client: ApiClient, tmp_path: Path, platform: Server
):
    brand = Brand(rt, api_client, tmp_path, rows=600)  # 200 products: three batches of the sync
    made = brand.showcase(rule={"sort": "newest"}, out_of_stock="sold_out", max_items=500)
    sid = made["id"]
    drain(rt)
    shown = len(brand.items(sid))
    write_feed(brand.feed, 600, variants_per_product=3, price_shift=100)

    run = sync_now(rt, brand.merchant_id)
    drain(rt)

    assert run.updated == 600 and run.events_emitted >= 200  # one product event each, over several commits
    announced = received(platform, sid)[1:]
    assert [t for t, _ in announced] == ["showcase.item_updated"]
    assert len(announced[0][1]["items"]) == shown == 200


def test_stock_webhooks_flip_availability_per_out_of_stock_setting(
    rt: Runtime, brand: Brand, platform: Server
):
    ids = product_ids(rt, brand.merchant_id)
    target = ids["P-000003"]
    hide = brand.showcase(handle="hide", product_ids=[target])
    sold = brand.showcase(handle="sold", product_ids=[target], out_of_stock="sold_out")
    skus = brand.skus("P-000003")
    brand.push([(sku, 4) for sku in skus])
    assert [i["sellable"] for i in brand.items(hide["id"])] == [4 * len(skus)]
    base_hide, base_sold = len(received(platform, hide["id"])), len(received(platform, sold["id"]))

    brand.push([(sku, 0) for sku in skus])

    assert brand.items(hide["id"]) == []
    [item] = brand.items(sold["id"])
    assert item["sold_out"] and item["sellable"] == 0
    [(kind, data)] = received(platform, hide["id"])[base_hide:]
    assert kind == "showcase.updated" and data["removed"] == [target]
    [(kind, data)] = received(platform, sold["id"])[base_sold:]
    assert kind == "showcase.item_updated" and data["items"][0]["available"] is False

    brand.push([(skus[0], 2)])  # restocked: it comes back

    assert [i["product_id"] for i in brand.items(hide["id"])] == [target]
    assert received(platform, hide["id"])[-1][1]["added"] == [{"product_id": target, "position": 0}]


def test_rule_filters_vendor_price_and_stock(rt: Runtime, brand: Brand):
    ids = product_ids(rt, brand.merchant_id)
    with rt.db.session() as session:
        rows = session.execute(
            select(Product.id, Product.vendor, func.min(Variant.price_minor))
            .join(Variant, Variant.product_id == Product.id)
            .where(Product.merchant_id == brand.merchant_id)
            .group_by(Product.id, Product.vendor)
        ).all()
    cheapest = {pid: price for pid, _, price in rows}
    vendor_of = {pid: vendor for pid, vendor, _ in rows}

    items = brand.items(
        brand.showcase(handle="all", rule={"sort": "price_asc"}, out_of_stock="sold_out")["id"]
    )
    assert [i["product_id"] for i in items] == sorted(ids.values(), key=lambda p: (cheapest[p], p))
    vendor = vendor_of[items[0]["product_id"]]
    by_vendor = brand.items(
        brand.showcase(handle="v", rule={"vendor": vendor}, out_of_stock="sold_out")["id"]
    )
    assert {i["product_id"] for i in by_vendor} == {p for p, v in vendor_of.items() if v == vendor}
    low, high = sorted(cheapest.values())[2], sorted(cheapest.values())[6]
    ranged = brand.items(
        brand.showcase(
            handle="r", rule={"min_price_minor": low, "max_price_minor": high}, out_of_stock="sold_out"
        )["id"]
    )
    assert {i["product_id"] for i in ranged} == {p for p, c in cheapest.items() if low <= c <= high}
    every = brand.items(brand.showcase(handle="e", rule={}, out_of_stock="sold_out")["id"])
    in_stock = brand.items(
        brand.showcase(handle="s", rule={"in_stock_only": True}, out_of_stock="sold_out")["id"]
    )
    assert [i["product_id"] for i in in_stock] == [i["product_id"] for i in every if i["available"]]
    capped = brand.items(brand.showcase(handle="c", rule={"sort": "newest"}, max_items=3)["id"])
    assert len(capped) == 3
