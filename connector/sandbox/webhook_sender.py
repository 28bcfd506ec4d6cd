"""The delivery machinery the store emulators' webhook senders share: injected faults (duplicate, reorder,
delay, drop), a due-time queue drained by one background thread, retries after fixed delays, held (reordered)
deliveries and the record of every attempt. Each emulator subclasses `WebhookSender` with what a delivery is
(its body, target and headers) and what an attempt records."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import requests


@dataclass(frozen=True, slots=True)
class WebhookFault:
    """How to deliver one webhook: twice with the same id, after the next one, later, or never."""

    duplicate: bool = False
    reorder: bool = False
    delay: float = 0.0
    drop: bool = False


@dataclass
class Outgoing:
    """One queued delivery: its raw body and how many times it has been sent already."""

    body: bytes = field(kw_only=True)
    attempt: int = field(default=0, kw_only=True)


OutgoingT = TypeVar("OutgoingT", bound=Outgoing)
AttemptT = TypeVar("AttemptT")


@dataclass(order=True)
class Scheduled(Generic[OutgoingT]):
    """A delivery due at a monotonic time; `sequence` keeps deliveries due together in queue order."""

    due: float
    sequence: int
    outgoing: OutgoingT = field(compare=False)


class WebhookSender(ABC, Generic[OutgoingT, AttemptT]):
    """Queues deliveries, applies faults and sends them (with retries) from one background thread (or more,
    `set_senders`)."""

    def __init__(self, *, timeout: float, retry_delays: Sequence[float], thread_name: str):
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays)
        self._lock = threading.Condition()
        self._queue: list[Scheduled[OutgoingT]] = []
        self._held: list[OutgoingT] = []
        self._sequence = itertools.count()
        self._attempts: list[AttemptT] = []
        self._busy = 0
        self._plan: list[WebhookFault] = []
        self._default = WebhookFault()
        self._random: tuple[float, random.Random, tuple[WebhookFault, ...]] | None = None
        self._session = requests.Session()
        self._stopped = False
        self._thread_name = thread_name
        self._threads: list[threading.Thread] = []
        self.set_senders(1)

    def set_senders(self, count: int) -> None:
        """Send from `count` threads at once (one unless told, so deliveries go out in order), as a store
        whose webhooks come from many machines; fewer than now is ignored."""
        with self._lock:
            while len(self._threads) < count:
                thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
                self._threads.append(thread)
                thread.start()

    # --- what each emulator defines ----------------------------------------------------------------------

    @abstractmethod
    def _request(self, outgoing: OutgoingT) -> tuple[str, dict[str, str]]:
        """The URL to POST `outgoing` to and the headers of this attempt."""

    @abstractmethod
    def _attempt(
        self, outgoing: OutgoingT, headers: dict[str, str] | None, status: int | None, error: str | None
    ) -> AttemptT:
        """The record of one attempt; `headers` is None for a delivery dropped before it was sent."""

    @abstractmethod
    def _delivered(self, outgoing: OutgoingT, status: int | None, error: str | None) -> None:
        """Called after each attempt (outside the lock), to log it."""

    # --- configuration -----------------------------------------------------------------------------------

    def plan(self, *faults: WebhookFault) -> None:
        """Apply these faults to the next deliveries (one each), then the default."""
        with self._lock:
            self._plan = list(faults)

    def set_default(self, fault: WebhookFault) -> None:
        with self._lock:
            self._default = fault

    def set_random(self, probability: float, faults: Sequence[WebhookFault], *, seed: int = 0) -> None:
        """Give each delivery one of `faults` with `probability`, drawn from a seeded generator."""
        with self._lock:
            self._random = (probability, random.Random(seed), tuple(faults)) if faults else None

    def attempts(self) -> list[AttemptT]:
        with self._lock:
            return list(self._attempts)

    def clear(self) -> None:
        with self._lock:
            self._attempts.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Release held (reordered) deliveries and wait until nothing is queued or in flight."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._release_held()
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
            return True

    def close(self) -> None:
        """Stop the sender thread (deliveries still queued are not sent) and release the HTTP session."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._session.close()

    # --- producing ---------------------------------------------------------------------------------------

    def _next_fault(self) -> WebhookFault:
        if self._plan:
            return self._plan.pop(0)
        if self._random is not None:
            probability, rng, faults = self._random
            if rng.random() < probability:
                return rng.choice(faults)
        return self._default

    def _enqueue(self, outgoing: OutgoingT) -> None:
        with self._lock:
            fault = self._next_fault()
            if fault.drop:
                self._attempts.append(self._attempt(outgoing, None, None, "dropped"))
                return
            if fault.reorder:
                self._held.append(outgoing)
                return
            due = time.monotonic() + fault.delay
            self._schedule(outgoing, due)
            if fault.duplicate:
                self._schedule(dataclasses.replace(outgoing, attempt=0), due)
            self._release_held()

    def _schedule(self, outgoing: OutgoingT, due: float) -> None:
        heapq.heappush(self._queue, Scheduled(due, next(self._sequence), outgoing))
        self._lock.notify_all()

    def _release_held(self) -> None:
        """Held deliveries go out right after whatever was scheduled before them."""
        for outgoing in self._held:
            self._schedule(outgoing, time.monotonic() + 0.01)
        self._held.clear()

    # --- sending -----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and (not self._queue or self._queue[0].due > time.monotonic()):
                    wait = (self._queue[0].due - time.monotonic()) if self._queue else 0.5
                    self._lock.wait(max(0.001, min(wait, 0.5)))
                if self._stopped:
                    return
                outgoing = heapq.heappop(self._queue).outgoing
                self._busy += 1
            try:
                self._send(outgoing)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _send(self, outgoing: OutgoingT) -> int | None:
        """POST `outgoing` once, record the attempt and schedule a retry if it failed; the status or None."""
        status: int | None = None
        error: str | None = None
        url, headers = self._request(outgoing)
        try:
            response = self._session.post(url, data=outgoing.body, headers=headers, timeout=self.timeout)
            status = response.status_code
        except requests.RequestException as failure:
            error = type(failure).__name__
        with self._lock:
            self._attempts.append(self._attempt(outgoing, headers, status, error))
            if (status is None or not 200 <= status < 300) and outgoing.attempt < len(self.retry_delays):
                delay = self.retry_delays[outgoing.attempt]
                outgoing.attempt += 1
                self._schedule(outgoing, time.monotonic() + delay)
        self._delivered(outgoing, status, error)
        return status
