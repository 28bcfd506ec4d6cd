"""Faults the emulated Walmart API can answer with, per endpoint: a 5xx, a 429 with Retry-After, added latency
(past the client's timeout it is a timeout; the request is still carried out), or a dropped connection
(before the request is carried out, or after it, so the change lands but the answer is lost); planned for the
next N calls or drawn with a probability from a seeded generator."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self

from connector.sandbox import faults


@dataclass(frozen=True, slots=True)
class ApiFault(faults.ApiFault):
    """How to answer one API call. `status` 200 means answer normally (after `latency` seconds); `drop_after`
    drops the connection after the call is carried out."""

    drop_after: bool = False

    @classmethod
    def dropped(cls, *, after: bool = False) -> Self:
        """Close the connection without an answer; with `after` the call is carried out first."""
        return cls(drop=not after, drop_after=after)


NONE = ApiFault()


@dataclass(slots=True)
class _Rule:
    endpoints: frozenset[str] | None
    faults: list[ApiFault]


class FaultPlan:
    """Planned faults (per endpoint or for all), then random ones, then none. Endpoint names are the
    emulator's route names (`get_items`, `put_inventory`, `mcs_create`, ...; see the app module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._random: list[tuple[frozenset[str] | None, float, random.Random, tuple[ApiFault, ...]]] = []

    def plan(self, *faults: ApiFault | int, endpoints: Iterable[str] | None = None) -> None:
        """Answer the next calls (to `endpoints`, or any) with these faults, one each (ints are statuses)."""
        chosen = frozenset(endpoints) if endpoints is not None else None
        with self._lock:
            self._rules.append(
                _Rule(chosen, [f if isinstance(f, ApiFault) else ApiFault(status=f) for f in faults])
            )

    def fail_next(self, count: int, fault: ApiFault | int, *, endpoints: Iterable[str] | None = None) -> None:
        self.plan(*([fault] * count), endpoints=endpoints)

    def set_random(
        self,
        probability: float,
        faults: Sequence[ApiFault],
        *,
        endpoints: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        """Give a fraction `probability` of calls (to `endpoints`, or any) one of `faults`."""
        chosen = frozenset(endpoints) if endpoints is not None else None
        with self._lock:
            self._random = [r for r in self._random if r[0] != chosen]
            if faults and probability > 0:
                self._random.append((chosen, probability, random.Random(seed), tuple(faults)))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._random.clear()

    def next(self, endpoint: str) -> ApiFault:
        with self._lock:
            for rule in self._rules:
                if rule.faults and (rule.endpoints is None or endpoint in rule.endpoints):
                    fault = rule.faults.pop(0)
                    self._rules = [r for r in self._rules if r.faults]
                    return fault
            for endpoints, probability, rng, faults in self._random:
                if (endpoints is None or endpoint in endpoints) and rng.random() < probability:
                    return rng.choice(faults)
            return NONE
