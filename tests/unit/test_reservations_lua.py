"""The reservation Lua scripts on a real Redis: all-or-nothing reserve, stale and missing counters, the pin
purchase checks, release exactly once, and a rebuild that leaves an existing counter alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

from connector.stock import counters
from connector.stock.counters import Hold, PinLine, VariantLine

EXPIRES = datetime.now(UTC) + timedelta(minutes=5)


def _variant(redis: Redis, variant_id: int, n: int, lv: int = 1) -> str:
    key = counters.variant_key(variant_id)
    assert counters.set_counter(redis, key, {"n": n, "gen": "g1", "lv": lv}, {}, {}, only_missing=False)
    return key


def _pin(redis: Redis, pin_id: int, n: int, *, price: int = 500, limit: int = 0, on_sale: bool = True) -> str:
    key = counters.pin_key(pin_id)
    fields = {
        "n": n,
        "gen": "p1",
        "act": "1" if on_sale else "0",
        "price": str(price),
        "cur": "USD",
        "lim": limit,
        "until": 0,
    }
    counters.set_counter(redis, key, fields, {}, {}, only_missing=False)
    return key


def _n(redis: Redis, key: str) -> int:
    return int(redis.hget(key, "n") or -1)


def test_reserve_takes_every_line_or_none(redis: Redis) -> None:
    a, b = _variant(redis, 1, 5), _variant(redis, 2, 1)
    lines = [VariantLine(1, 3, "r1", 1), VariantLine(2, 2, "r2", 1)]

    short = counters.reserve_variants(redis, lines, EXPIRES)
    assert (short.status, short.line, short.value) == ("short", 1, 1)
    assert (_n(redis, a), _n(redis, b)) == (5, 1)

    ok = counters.reserve_variants(redis, [VariantLine(1, 3, "r1", 1), VariantLine(2, 1, "r2", 1)], EXPIRES)
    assert ok.ok and (_n(redis, a), _n(redis, b)) == (2, 0)
    assert redis.hget(counters.holds_key(a), "r1") == f"3|{int(EXPIRES.timestamp())}|".encode()


def test_reserve_refuses_missing_and_stale_counters(redis: Redis) -> None:
    _variant(redis, 1, 5, lv=3)
    assert counters.reserve_variants(redis, [VariantLine(9, 1, "r", 0)], None).status == "missing"
    stale = counters.reserve_variants(redis, [VariantLine(1, 1, "r", 4)], None)
    assert stale.status == "stale" and _n(redis, counters.variant_key(1)) == 5


def test_a_hold_is_given_back_once(redis: Redis) -> None:
    key = _variant(redis, 1, 5)
    counters.reserve_variants(redis, [VariantLine(1, 2, "r1", 1)], None)
    assert counters.release_in_redis(redis, [Hold(key, "r1"), Hold(key, "r1"), Hold(key, "unknown")]) == 1
    assert _n(redis, key) == 5


def test_pin_purchase_checks_sale_price_limit_and_allocation(redis: Redis) -> None:
    key = _pin(redis, 7, 3, limit=2)
    mark = "sl:idem:1:k"

    def buy(quantity: int, price: int = 500, buyer: str = "b1", rid: str = "r") -> counters.Outcome:
        line = PinLine(7, quantity, price, rid)
        return counters.buy_from_pins(
            redis, [line], buyer=buyer, expires_at=EXPIRES, mark=mark + rid, token="t"
        )

    price = buy(1, price=400)
    assert (price.status, price.value) == ("price", 500)
    first = buy(2, rid="a")
    assert first.ok and first.gens == ("p1",) and first.remaining == (1,)
    assert redis.get(mark + "a") == b"t"  # the idempotency mark is taken with the purchase
    limit = buy(1, rid="b")
    assert (limit.status, limit.value) == ("limit", 0)
    assert buy(2, buyer="b2", rid="c").status == "short"
    assert buy(1, buyer="b2", rid="a").status == "replay"
    assert buy(1, buyer="b2", rid="d").ok and _n(redis, key) == 0

    counters.release_in_redis(redis, [Hold(key, "a")])
    assert _n(redis, key) == 2 and redis.hget(counters.buyers_key(key), "b1") is None
    _pin(redis, 7, 2, on_sale=False)
    assert buy(1, rid="e").status == "inactive"


def test_marks_are_dropped_only_by_their_owner(redis: Redis) -> None:
    assert counters.claim_mark(redis, "m", "mine")
    assert not counters.claim_mark(redis, "m", "theirs")
    counters.drop_mark(redis, "m", "theirs")
    assert redis.get("m") == b"mine"
    counters.drop_mark(redis, "m", "mine")
    assert redis.get("m") is None


def test_a_rebuild_only_when_missing_keeps_the_existing_counter(redis: Redis) -> None:
    key = _variant(redis, 1, 5)
    assert not counters.set_counter(redis, key, {"n": 99, "gen": "g2", "lv": 1}, {}, {}, only_missing=True)
    assert _n(redis, key) == 5
    holds = {f"r{i}": "1||" for i in range(1_000)}  # more than one HSET batch
    assert counters.set_counter(redis, key, {"n": 1, "gen": "g3", "lv": 1}, holds, {}, only_missing=False)
    assert redis.hlen(counters.holds_key(key)) == 1_000
    assert counters.same_generations(redis, {key: "g3"})
    assert not counters.same_generations(redis, {key: "g1"})
