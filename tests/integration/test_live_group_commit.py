"""Group commit of live purchases over HTTP: purchases that wait while another commits are committed together,
each answered 201 only once its order is in the database; a purchase whose write fails in a batch fails
alone (its unit goes back to the pin, its key can be used again) and the batch's others are committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.infra import runtime
from connector.infra.group_commit import GroupCommit
from connector.infra.models import Order, Reservation
from connector.orders import live_checkout
from connector.stock import counters
from tests.integration.checkout_support import (
    Shop,
    counter,
    events_of,
    live_pin,
    make_shop,
    order_count,
    post_order,
)

Runtime = runtime.Runtime
FLASH = 700
WAITING = 5


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path) -> Shop:
    return make_shop(rt, tmp_path, stock=(50, 5), prices=(1_000, 1_000))


def _live_pin(shop: Shop, allocation: int) -> tuple[int, int]:
    return live_pin(shop, flash=FLASH, allocation=allocation)


def _body(shop: Shop, session_id: int, buyer: str) -> dict[str, Any]:
    return {
        "lines": [{"variant_id": shop.variants[0], "quantity": 1, "unit_price_minor": FLASH}],
        "currency": "USD",
        "buyer": {"ref": buyer},
        "live_session_id": session_id,
    }


class Gate:
    """Holds the purchase of buyer `gate` inside its write (so it leads and commits alone) until the other
    purchases wait in the group commit's queue; then the rest commit as one batch. Records the batch sizes."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, rt: Runtime, fail_for: str | None = None, leaders: int = 1
    ):
        self.rt = rt
        monkeypatch.setattr(rt.group_commit, "max_leaders", leaders)
        self.inside = threading.Event()
        self.open = threading.Event()
        self.batches: list[int] = []
        persist_many = live_checkout.persist_many

        def gated_persist_many(session: Any, news: list[Any]) -> list[dict[str, Any]]:
            buyers = {new.request.buyer.get("ref") for new in news}
            if "gate" in buyers:
                self.inside.set()
                assert self.open.wait(30)
            if fail_for in buyers:
                raise RuntimeError("the write of this purchase fails")
            return persist_many(session, news)

        commit = GroupCommit._commit

        def counted_commit(group: GroupCommit, batch: list[Any]) -> None:
            self.batches.append(len(batch))
            commit(group, batch)

        monkeypatch.setattr(live_checkout, "persist_many", gated_persist_many)
        monkeypatch.setattr(GroupCommit, "_commit", counted_commit)

    def queued(self) -> int:
        return len(self.rt.group_commit._queue)


def _run(shop: Shop, session_id: int, gate: Gate, buyers: list[str]) -> dict[str, Any]:
    """Buy once for `gate` and once for each buyer in threads (the buyers once the gate leads); answers."""
    answers: dict[str, Any] = {}

    def buy(buyer: str) -> Callable[[], None]:
        def run() -> None:
            answers[buyer] = post_order(
                shop.http(), shop.auth, _body(shop, session_id, buyer), key=f"k-{buyer}"
            )

        return run

    first = threading.Thread(target=buy("gate"))
    first.start()
    assert gate.inside.wait(30)
    others = [threading.Thread(target=buy(buyer)) for buyer in buyers]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while gate.queued() < len(buyers):
        assert time.monotonic() < deadline, "the purchases never queued for the group commit"
        time.sleep(0.01)
    gate.open.set()
    for thread in [first, *others]:
        thread.join(60)
    return answers


def _orders(rt: Runtime) -> dict[str, dict[str, Any]]:
    with rt.db.session() as session:
        rows = session.execute(select(Order.public_id, Order.response_body)).all()
    return {public_id: body for public_id, body in rows}


def test_waiting_purchases_commit_together_and_each_201_is_in_the_database(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id, pin_id = _live_pin(shop, allocation=10)
    gate = Gate(monkeypatch, shop.rt)
    buyers = [f"b{n}" for n in range(WAITING)]

    answers = _run(shop, session_id, gate, buyers)

    assert gate.batches == [1, WAITING]  # the gate alone, then the purchases that waited for it, together
    assert {buyer: answer.status_code for buyer, answer in answers.items()} == dict.fromkeys(
        ["gate", *buyers], 201
    )
    stored = _orders(shop.rt)
    assert len(stored) == WAITING + 1
    for answer in answers.values():
        assert stored[answer.get_json()["id"]] == answer.get_json()  # durable, with its idempotent answer
    assert counter(shop.rt, counters.pin_key(pin_id)) == 10 - (WAITING + 1)
    with shop.rt.db.session() as session:
        allocation = session.get(Reservation, counters.allocation_id(pin_id))
        assert allocation is not None and allocation.quantity == 10 - (WAITING + 1)
    purchases = [event for event in events_of(shop.rt, "live.pin_updated") if event["change"] == "purchase"]
    assert sorted(event["remaining"] for event in purchases) == list(range(10 - (WAITING + 1), 10))
    assert len(events_of(shop.rt, "order.accepted")) == WAITING + 1
    replay = post_order(shop.http(), shop.auth, _body(shop, session_id, "b0"), key="k-b0")
    assert replay.status_code == 201 and replay.get_json() == answers["b0"].get_json()
    assert replay.headers.get("Idempotent-Replayed") == "true"


def test_a_purchase_whose_write_fails_in_a_batch_fails_alone(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id, pin_id = _live_pin(shop, allocation=10)
    gate = Gate(monkeypatch, shop.rt, fail_for="b2")
    buyers = [f"b{n}" for n in range(WAITING)]

    answers = _run(shop, session_id, gate, buyers)

    assert gate.batches == [1, WAITING]
    statuses = {buyer: answer.status_code for buyer, answer in answers.items()}
    assert statuses.pop("b2") == 500
    assert set(statuses.values()) == {201}
    stored = _orders(shop.rt)
    assert sorted(stored) == sorted(
        answer.get_json()["id"] for answer in answers.values() if answer.status_code == 201
    )
    assert order_count(shop.rt) == WAITING  # the gate and the four others; nothing of b2's
    assert counter(shop.rt, counters.pin_key(pin_id)) == 10 - WAITING  # b2's unit went back to the pin
    with shop.rt.db.session() as session:
        allocation = session.get(Reservation, counters.allocation_id(pin_id))
        assert allocation is not None and allocation.quantity == 10 - WAITING
        assert (
            len(session.scalars(select(Reservation).where(Reservation.order_id.is_not(None))).all())
            == WAITING
        )
    assert len(events_of(shop.rt, "order.accepted")) == WAITING

    monkeypatch.undo()
    again = post_order(shop.http(), shop.auth, _body(shop, session_id, "b2"), key="k-b2")
    assert again.status_code == 201, again.get_json()  # the failed request left its key free
    assert counter(shop.rt, counters.pin_key(pin_id)) == 10 - WAITING - 1


def test_on_postgresql_a_second_transaction_commits_while_the_first_waits(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shop.rt.db.is_sqlite:
        pytest.skip("SQLite's writers take turns: one transaction in flight per process")
    assert shop.rt.group_commit.max_leaders == 2
    session_id, pin_id = _live_pin(shop, allocation=10)
    gate = Gate(monkeypatch, shop.rt, leaders=2)
    answers: dict[str, Any] = {}

    def buy(buyer: str) -> None:
        answers[buyer] = post_order(shop.http(), shop.auth, _body(shop, session_id, buyer), key=f"k-{buyer}")

    first = threading.Thread(target=buy, args=("gate",))
    first.start()
    assert gate.inside.wait(30)
    others = [threading.Thread(target=buy, args=(f"b{n}",)) for n in range(WAITING)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(60)
    # Committed while the gate's transaction is still open (it takes the pin's allocation row last).
    assert {answers[f"b{n}"].status_code for n in range(WAITING)} == {201}
    assert "gate" not in answers and order_count(shop.rt) == WAITING
    gate.open.set()
    first.join(60)
    assert answers["gate"].status_code == 201
    assert gate.batches[0] == 1 and sum(gate.batches) == WAITING + 1
    assert order_count(shop.rt) == WAITING + 1
    assert counter(shop.rt, counters.pin_key(pin_id)) == 10 - (WAITING + 1)
    with shop.rt.db.session() as session:
        allocation = session.get(Reservation, counters.allocation_id(pin_id))
        assert allocation is not None and allocation.quantity == 10 - (WAITING + 1)
