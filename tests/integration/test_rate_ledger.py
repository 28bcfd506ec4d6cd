"""The shared rate ledger (connector.infra.rate_limits) on a real Redis, and Shopify clients in several threads that
pace through it against the emulator's cost bucket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from adapters.shopify.client import ShopifyClient
from connector.domain.ports import HttpOptions
from connector.infra import rate_limits
from connector.infra.rate_limits import RedisRateLedger
from connector.sandbox.shopify import Server, serve

SHOP = "storelink-demo.myshopify.com"
QUERY = "query StorelinkLedgerProbe { products(first: 20) { nodes { id title } } }"


def test_reservations_queue_behind_each_other_and_refunds_return_points(redis: Redis):
    # Each wait shrinks by the time spent since the last report: the bounds allow 0.1 s of it, which still
    # tells every expected wait from the one a wrong ledger would give (0.2 s apart or more).
    ledger = RedisRateLedger(lambda: redis, "shopify:ledger-unit")
    assert ledger.take(10) is None  # nothing learned yet: the caller paces on its own
    ledger.report(0, maximum=100, restore_rate=50, available=30, reserved=0)
    assert ledger.take(20) == 0
    wait = ledger.take(20)  # 10 points short at 50 a second
    assert wait is not None and 0.1 < wait <= 0.2
    third = ledger.take(20)  # queued behind the second: 30 short
    assert third is not None and 0.5 < third <= 0.6
    for _ in range(2):  # two reservations were not charged
        ledger.report(20, maximum=100, restore_rate=50, available=100, reserved=20)
    again = ledger.take(20)
    assert again is not None and 0.1 < again <= 0.2
    # The third is charged and the store says less: the store wins, less the reservation still in flight.
    ledger.report(0, maximum=100, restore_rate=50, available=0, reserved=20)
    low = ledger.take(10)
    assert low is not None and 0.5 < low <= 0.6  # behind the 20 points still in flight and in debt
    ledger.forget()
    assert ledger.take(1) is None


def test_a_report_does_not_hand_out_the_points_of_reservations_still_in_flight(redis: Redis) -> None:
    ledger = RedisRateLedger(lambda: redis, "shopify:ledger-flight")
    assert ledger.take(10) is None
    ledger.report(0, maximum=100, restore_rate=50, available=40, reserved=0)
    assert ledger.take(20) == 0  # the first request
    assert ledger.take(20) == 0  # the second: nothing left once both are charged; it is still on its way
    # The first is answered: it cost 10 (10 points return), and the store, which spent points the ledger did not
    # know of (e.g. a request whose cost was guessed too low), says 10 are left. It has not seen the second.
    ledger.report(10, maximum=100, restore_rate=50, available=10, reserved=20)
    wait = ledger.take(20)  # the second's 20 still come off the store's 10: 30 short, not 10
    assert wait is not None and 0.5 < wait <= 0.6
    ledger.forget()


def test_a_reservation_in_flight_keeps_the_ledger_below_the_maximum(redis: Redis) -> None:
    ledger = RedisRateLedger(lambda: redis, "shopify:ledger-full")
    assert ledger.take(10) is None
    ledger.report(0, maximum=100, restore_rate=50, available=100, reserved=0)
    # On its way: the store stays full meanwhile and gains nothing from its refill.
    assert ledger.take(40) == 0
    time.sleep(0.3)
    wait = ledger.take(100)  # 60 left once the first is charged, however long it took to arrive
    assert wait == pytest.approx(0.8)
    ledger.forget()


def test_a_reservation_that_never_reports_stops_counting(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits, "IN_FLIGHT_SECONDS", 0.2)
    ledger = RedisRateLedger(lambda: redis, "shopify:ledger-gone")
    assert ledger.take(10) is None
    ledger.report(0, maximum=100, restore_rate=50, available=100, reserved=0)
    assert ledger.take(40) == 0  # its worker dies before the request is sent
    time.sleep(0.5)
    wait = ledger.take(100)  # refilled past the 60 a reservation in flight would leave (0.8 s short)
    assert wait is not None and wait <= 0.4
    ledger.forget()


def test_while_the_bucket_is_unknown_one_request_learns_it_and_the_others_wait_for_its_answer(redis: Redis):
    probe = RedisRateLedger(lambda: redis, "shopify:ledger-probe")
    slept: list[float] = []

    def answer_arrives(seconds: float) -> None:  # the probe's answer comes while the second request waits
        slept.append(seconds)
        if len(slept) == 3:
            probe.report(10, maximum=100, restore_rate=50, available=40, reserved=0)

    waiting = RedisRateLedger(lambda: redis, "shopify:ledger-probe", sleep=answer_arrives)
    assert probe.take(10) is None  # the first request goes out to learn the bucket
    assert waiting.take(20) == 0  # the second waited for the answer, then reserved from what it said
    assert len(slept) == 3
    assert waiting.take(30) is not None  # known now: reservations, no second probe
    probe.forget()


def test_a_probe_that_never_answers_hands_over(redis: Redis, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(rate_limits, "PROBE_SECONDS", 0.2)
    lost = RedisRateLedger(lambda: redis, "shopify:ledger-lost")
    assert lost.take(10) is None  # its worker dies before the answer
    slept: list[float] = []
    waiting = RedisRateLedger(
        lambda: redis, "shopify:ledger-lost", sleep=lambda s: (slept.append(s), time.sleep(s))
    )
    assert waiting.take(10) is None  # after the probe's time it is the next to learn the bucket
    assert 0.1 <= sum(slept) <= 1.0
    lost.forget()


class _Throttles:
    def __init__(self, server: Server) -> None:
        self.count = 0
        bucket = server.emulator.bucket
        take = bucket.take
        lock = threading.Lock()

        def counting(cost: int) -> bool:
            ok: bool = take(cost)
            if not ok:
                with lock:
                    self.count += 1
            return ok

        bucket.take = counting


@pytest.fixture
def shop() -> Iterator[Server]:
    with serve(maximum_available=80, restore_rate=200) as server:
        server.store.seed_catalog(20, 1)
        server.emulator.query("{ shop { name } }")  # loads the schema before the clock matters
        yield server


def test_workers_sharing_the_ledger_do_not_overdraw_the_shop(shop: Server, redis: Redis):
    throttles = _Throttles(shop)
    shop.emulator.bucket.drain(0)
    errors: list[BaseException] = []

    def worker() -> None:
        client = ShopifyClient(SHOP, "shpat_sandbox", HttpOptions(timeout=10), base_url=shop.url)
        client.ledger = RedisRateLedger(lambda: redis, f"shopify:{SHOP}")
        try:
            client.execute(QUERY)  # learns the document's cost (and the ledger the bucket)
            for _ in range(7):
                client.execute(QUERY)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # Before the first answer nobody knows the bucket (it starts empty here): one request goes to learn it
    # (and is refused), the others wait for its answer; a first request of its kind may still be refused when
    # its guessed cost was too low. Every later one waited in the ledger for its points.
    assert throttles.count <= 4
