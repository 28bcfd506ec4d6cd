"""The showcase diff: what `showcase.updated` and `showcase.item_updated` say is exactly what changed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.domain import event_types
from connector.infra.models import Showcase
from connector.showcases.events import diff

SHOWCASE = Showcase(id=1, handle="h", owner_kind="merchant")


def _row(pid: int, price: int = 100, available: bool = True) -> list:
    return [pid, price, None, "USD", available]


@given(
    st.lists(st.integers(1, 40), unique=True, max_size=25),
    st.lists(st.integers(1, 40), unique=True, max_size=25),
)
def test_added_removed_and_moved_rebuild_the_new_order(old_ids: list[int], new_ids: list[int]) -> None:
    events = diff(SHOWCASE, [_row(p) for p in old_ids], [_row(p) for p in new_ids])
    if old_ids == new_ids:
        assert events == []
        return
    [event] = events
    assert event["type"] == event_types.SHOWCASE_UPDATED
    data = event["data"]
    assert set(data["removed"]) == set(old_ids) - set(new_ids)
    assert {a["product_id"] for a in data["added"]} == set(new_ids) - set(old_ids)
    # The items neither added nor moved kept their relative order: placing the others rebuilds the list.
    placed = {a["product_id"] for a in data["added"]} | {m["product_id"] for m in data["moved"]}
    kept = [p for p in old_ids if p in set(new_ids) - placed]
    assert kept == [p for p in new_ids if p not in placed]
    assert all(new_ids[e["position"]] == e["product_id"] for e in data["added"] + data["moved"])


def test_one_move_is_reported_as_one_move() -> None:
    old, new = [1, 2, 3, 4, 5], [2, 3, 4, 5, 1]
    [event] = diff(SHOWCASE, [_row(p) for p in old], [_row(p) for p in new])
    assert event["data"]["moved"] == [{"product_id": 1, "position": 4}]


def test_price_and_availability_changes_of_visible_items_are_item_updates() -> None:
    old = [_row(1), _row(2), _row(3)]
    new = [_row(1, price=90), _row(2, available=False), _row(3)]
    [event] = diff(SHOWCASE, old, new)
    assert event["type"] == event_types.SHOWCASE_ITEM_UPDATED
    assert [(i["product_id"], i["price_minor"], i["available"]) for i in event["data"]["items"]] == [
        (1, 90, True),
        (2, 100, False),
    ]
