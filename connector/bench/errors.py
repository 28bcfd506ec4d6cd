"""The one error a benchmark raises when it cannot reach its figures (a process of its own failed, a wait for
its workers or its orders ran out); `storelink bench` prints its message as one line and exits 1."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A benchmark stopped short of its figures; the message says which part and why."""
