"""Faults the emulated Admin API can answer with: a 5xx, a 429 with Retry-After, added latency, or a dropped
connection; planned for the next requests or drawn with a probability from a seeded generator."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence

from connector.sandbox.faults import ApiFault

__all__ = ["NONE", "ApiFault", "FaultPlan"]

NONE = ApiFault()


class FaultPlan:
    """The faults of the next requests, then a probability of one of several, then none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: list[ApiFault] = []
        self._random: tuple[float, random.Random, tuple[ApiFault, ...]] | None = None

    def plan(self, *faults: ApiFault | int) -> None:
        """Answer the next requests with these faults (ints are statuses), one each."""
        with self._lock:
            self._plan = [f if isinstance(f, ApiFault) else ApiFault(status=f) for f in faults]

    def set_random(self, probability: float, faults: Sequence[ApiFault], *, seed: int = 0) -> None:
        with self._lock:
            self._random = (probability, random.Random(seed), tuple(faults)) if faults else None

    def clear(self) -> None:
        with self._lock:
            self._plan, self._random = [], None

    def next(self) -> ApiFault:
        with self._lock:
            if self._plan:
                return self._plan.pop(0)
            if self._random is not None:
                probability, rng, faults = self._random
                if rng.random() < probability:
                    return rng.choice(faults)
            return NONE
