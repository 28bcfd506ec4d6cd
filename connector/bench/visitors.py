"""The `clicks` benchmark's visitors: link redirects (`GET /l/{code}`) sent from load processes of their own
(asyncio, `concurrency` connections each, one request per connection), each answer timed and counted.

A plan of requests is mostly people (each visitor always follows the same link; half are named by the
platform's visitor header, half only by their browser's user agent), and a share of bots, prefetches and
HEAD requests, which must be redirected but not counted. The load processes run `_load_process`, so this
module imports only the standard library and light modules of the project.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final

from connector.bench.load import LoadResult, exchange, run_processes, status_of

BROWSER: Final = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
BOT: Final = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@dataclass(frozen=True, slots=True)
class VisitSpec:
    """What the visitors send: `requests` visits to `codes` by `visitors` people, bots and prefetchers."""

    port: int
    codes: tuple[str, ...]
    requests: int
    visitors: int
    tag: str
    concurrency: int = 16
    first: int = 0
    count: int | None = None

    def part(self, port: int, first: int, count: int) -> VisitSpec:
        """Requests `first` to `first + count` of this plan, sent to `port`."""
        return VisitSpec(
            port, self.codes, self.requests, self.visitors, self.tag, self.concurrency, first, count
        )


def visit_kind(n: int) -> str:
    """Request `n`'s kind: 5% bots, 3% prefetches, 2% HEAD requests, the rest people."""
    slot = n % 100
    return "bot" if slot < 5 else "prefetch" if slot < 8 else "head" if slot < 10 else "person"


def _visit(spec: VisitSpec, n: int) -> tuple[bytes, tuple[int, str] | None]:
    """Request `n` as bytes, and the (visitor, code) it counts for (None: not counted)."""
    kind = visit_kind(n)
    visitor = n % spec.visitors
    code = spec.codes[visitor % len(spec.codes)]
    method, headers = "GET", {"User-Agent": BROWSER}
    counts: tuple[int, str] | None = None
    if kind == "bot":
        headers["User-Agent"] = BOT
    elif kind == "prefetch":
        headers["Sec-Purpose"] = "prefetch"
    elif kind == "head":
        method = "HEAD"
    elif visitor % 2:
        headers["X-Platform-Visitor"] = f"{spec.tag}-{visitor}"
        counts = (visitor, code)
    else:
        headers["User-Agent"] = f"{BROWSER} Visitor/{spec.tag}-{visitor}"
        counts = (visitor, code)
    lines = [f"{method} /l/{code} HTTP/1.1", f"Host: 127.0.0.1:{spec.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), counts


def plan(spec: VisitSpec) -> tuple[list[bytes], int]:
    """Every request of `spec` in order, and how many clicks they must record (distinct counted visitors)."""
    prepared: list[bytes] = []
    counted: set[tuple[int, str]] = set()
    for n in range(spec.requests):
        payload, counts = _visit(spec, n)
        prepared.append(payload)
        if counts is not None:
            counted.add(counts)
    return prepared, len(counted)


async def _send_all(port: int, payloads: list[bytes], concurrency: int) -> LoadResult:
    result = LoadResult(started=time.monotonic())
    cursor = iter(payloads)

    async def visitor() -> None:
        for payload in cursor:
            began = time.monotonic()
            try:
                status = status_of(await exchange(port, payload))
            except OSError:
                status = 0
            result.latencies_ms.append((time.monotonic() - began) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1

    await asyncio.gather(*(visitor() for _ in range(concurrency)))
    result.finished = time.monotonic()
    return result


def _load_process(spec: VisitSpec, index: int, processes: int, ready: Any, go: Any, out: Any) -> None:
    count = spec.requests - spec.first if spec.count is None else spec.count
    mine = range(spec.first + index, spec.first + count, processes)
    payloads = [_visit(spec, n)[0] for n in mine]  # prepared before the clock starts
    ready.put(index)
    go.wait()
    result = asyncio.run(_send_all(spec.port, payloads, spec.concurrency))
    out.put((result.statuses, result.latencies_ms, result.started, result.finished))


def load(spec: VisitSpec, *, processes: int = 2) -> LoadResult:
    """Every request of `spec`, from `processes` processes started together; the rate is over the whole burst."""
    return run_processes(_load_process, spec, processes)
