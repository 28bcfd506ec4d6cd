"""Rule showcases by tag and by collection follow the catalog as it syncs: a product tagged or put in the
collection in the store joins, one untagged or taken out leaves, each change announced once as
`showcase.updated` and verified at the platform's receiver; deleting a showcase sends `showcase.deleted`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from connector.infra import runtime
from connector.sandbox.feeds import write_feed
from connector.sandbox.platform import Server
from tests.helpers import ApiClient, build_app, drain, rewrite_feed, sync_now
from tests.integration import showcase_support
from tests.integration.showcase_support import create, feed_merchant, product_ids, view

Runtime = runtime.Runtime
platform = showcase_support.platform  # the platform's receiver, subscribed to showcase events (a fixture)


class Brand:
    """A feed merchant of the API client whose rows carry a tag (`odd`/`even` by product number) and a
    category path, synced: P-000001 odd, Apparel > Outerwear; P-000002 even, Home > Kitchen; P-000003 odd,
    Toys; P-000004 even, Apparel > Shirts."""

    def __init__(self, rt: Runtime, client: ApiClient, tmp_path: Path) -> None:
        self.rt, self.client = rt, client
        self.feed = write_feed(tmp_path / "feed.csv", 12, variants_per_product=3, labels=True)
        self.merchant_id = feed_merchant(rt, self.feed, client.id)
        sync_now(rt, self.merchant_id)
        self.ids = product_ids(rt, self.merchant_id)
        self.app = build_app(rt)

    def http(self) -> FlaskClient:
        return self.app.test_client()

    def showcase(self, handle: str, rule: dict[str, Any]) -> int:
        made = create(
            self.http(),
            self.client.headers,
            owner_kind="merchant",
            merchant_id=self.merchant_id,
            handle=handle,
            rule=rule,
            out_of_stock="sold_out",
        )
        assert made["rule"] == {"sort": "newest", "in_stock_only": False, **rule}
        return int(made["id"])

    def shown(self, showcase_id: int) -> set[str]:
        names = {pid: ext for ext, pid in self.ids.items()}
        return {names[i["product_id"]] for i in view(self.http(), self.client.headers, showcase_id)["items"]}

    def restock(self, change: dict[str, dict[str, str]]) -> None:
        """Rewrite the feed's rows of each product named in `change` with those column values, and sync."""

        def edit(_: int, row: dict[str, str]) -> dict[str, str]:
            return {**row, **change.get(row["item_group_id"], {})}

        rewrite_feed(self.feed, edit)
        run = sync_now(self.rt, self.merchant_id)
        assert run.status == "succeeded", run.error
        drain(self.rt)


@pytest.fixture
def brand(rt: Runtime, api_client: ApiClient, tmp_path: Path, platform: Server) -> Brand:
    return Brand(rt, api_client, tmp_path)


def received(platform: Server, showcase_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r.type, r.data) for r in platform.receiver.received() if r.data.get("showcase_id") == showcase_id
    ]


def test_rule_showcases_by_tag_and_by_collection_follow_the_catalog(
    rt: Runtime, brand: Brand, platform: Server
):
    ids = brand.ids
    odd = brand.showcase("odd", {"tag": "ODD"})  # any spelling of the tag
    kitchen = brand.showcase("kitchen", {"collection": "home-kitchen"})
    apparel_shirts = brand.showcase("shirts", {"collection": "product-type:apparel-shirts", "tag": "even"})
    assert brand.shown(odd) == {"P-000001", "P-000003"}
    assert brand.shown(kitchen) == {"P-000002"}
    assert brand.shown(apparel_shirts) == {"P-000004"}
    drain(rt)
    assert [t for t, _ in received(platform, odd)] == ["showcase.updated"]

    # In the store: P-000002 tagged odd and moved to Toys, P-000001 untagged, P-000003 moved to the kitchen.
    brand.restock(
        {
            "P-000002": {"custom_label_0": "odd", "product_type": "Toys"},
            "P-000001": {"custom_label_0": ""},
            "P-000003": {"product_type": "Home > Kitchen"},
        }
    )

    assert brand.shown(odd) == {"P-000002", "P-000003"}
    assert brand.shown(kitchen) == {"P-000003"}
    assert brand.shown(apparel_shirts) == {"P-000004"}
    [(kind, data)] = received(platform, odd)[1:]
    assert kind == "showcase.updated" and data["removed"] == [ids["P-000001"]]
    assert [a["product_id"] for a in data["added"]] == [ids["P-000002"]]
    [(kind, data)] = received(platform, kitchen)[1:]
    assert kind == "showcase.updated" and data["removed"] == [ids["P-000002"]]
    assert [a["product_id"] for a in data["added"]] == [ids["P-000003"]]
    assert received(platform, apparel_shirts)[1:] == []

    # The tag comes back under another spelling: the showcase takes the product back; a resync of the same
    # feed changes nothing and announces nothing.
    brand.restock({"P-000001": {"custom_label_0": "Odd"}})
    assert brand.shown(odd) == {"P-000001", "P-000002", "P-000003"}
    assert [a["product_id"] for a in received(platform, odd)[-1][1]["added"]] == [ids["P-000001"]]
    before = len(platform.receiver.received())
    assert sync_now(rt, brand.merchant_id).events_emitted == 0
    drain(rt)
    assert len(platform.receiver.received()) == before


def test_a_rule_naming_nothing_yet_shows_nothing_until_the_store_has_it(
    rt: Runtime, brand: Brand, platform: Server
):
    sale = brand.showcase("sale", {"tag": "sale"})
    assert brand.shown(sale) == set()
    brand.restock({"P-000004": {"custom_label_0": "Sale"}})
    assert brand.shown(sale) == {"P-000004"}
    [(kind, data)] = received(platform, sale)
    assert kind == "showcase.updated" and data["added"] == [
        {"product_id": brand.ids["P-000004"], "position": 0}
    ]


def test_deleting_a_showcase_sends_showcase_deleted(rt: Runtime, brand: Brand, platform: Server):
    odd = brand.showcase("odd", {"tag": "odd"})
    drain(rt)
    shown = [i["product_id"] for i in view(brand.http(), brand.client.headers, odd)["items"]]

    response = brand.http().delete(f"/v1/showcases/{odd}", headers=brand.client.headers)
    assert response.status_code == 204
    drain(rt)

    kinds = [t for t, _ in received(platform, odd)]
    assert kinds == ["showcase.updated", "showcase.deleted"]
    deleted = received(platform, odd)[-1][1]
    assert deleted == {
        "showcase_id": odd,
        "handle": "odd",
        "owner_kind": "merchant",
        "merchant_id": brand.merchant_id,
        "creator_ref": None,
        "removed": shown,
    }
    gone = brand.http().get(f"/v1/showcases/{odd}", headers=brand.client.headers)
    assert gone.status_code == 404
    # The store changing afterwards announces nothing more about it.
    brand.restock({"P-000002": {"custom_label_0": "odd"}})
    assert [t for t, _ in received(platform, odd)] == kinds
