"""HTTP load for benchmarks: closed-loop request floods and paced sends over raw loopback sockets.

Requests are prepared as bytes before the clock starts, each on a fresh connection (`Connection: close`: one
request per connection, whatever gunicorn's worker class). A flood runs in its own processes so that the
measuring process's GIL is not part of what is measured.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def http_request(path: str, headers: Mapping[str, str], body: bytes, port: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True, slots=True)
class FloodResult:
    ok: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


async def exchange(port: int, payload: bytes) -> bytes:
    """Send one raw HTTP request (asking the server to close) to 127.0.0.1:`port`; the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer; 0 when there is none."""
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


async def _send(port: int, payload: bytes) -> int:
    return status_of(await exchange(port, payload))


async def _flood(
    port: int, requests: list[bytes], concurrency: int, warmup: float, seconds: float
) -> FloodResult:
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    ok = failed = 0
    latencies: list[float] = []
    cursor = 0

    async def loop() -> None:
        nonlocal ok, failed, cursor
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            payload = requests[cursor % len(requests)]
            cursor += 1
            try:
                status = await _send(port, payload)
            except OSError:
                status = 0
            done = time.perf_counter()
            if now >= measure_from and done <= stop_at:
                if status == 200:
                    ok += 1
                    latencies.append((done - now) * 1000)
                else:
                    failed += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return FloodResult(ok, failed, seconds, latencies)


def _flood_process(
    build: Callable[[int], list[bytes]],
    index: int,
    port: int,
    concurrency: int,
    warmup: float,
    seconds: float,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    requests = build(index)  # signing happens here, before the clock starts
    ready.put(index)
    go.wait()
    result = asyncio.run(_flood(port, requests, concurrency, warmup, seconds))
    out.put((result.ok, result.failed, result.seconds, result.latencies_ms))


def flood(
    build: Callable[[int], list[bytes]],
    port: int,
    *,
    processes: int = 2,
    concurrency: int = 16,
    warmup: float = 1.0,
    seconds: float = 5.0,
) -> FloodResult:
    """Closed-loop load from `processes` processes; `build(i)` returns process i's prepared requests
    (it must be a picklable module-level callable). Counts 200 answers completed in the window."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=_flood_process, args=(build, i, port, concurrency, warmup, seconds, ready, go, out)
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=300)
        go.set()
        parts = [out.get(timeout=warmup + seconds + 120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    return FloodResult(
        ok=sum(p[0] for p in parts),
        failed=sum(p[1] for p in parts),
        seconds=seconds,
        latencies_ms=[lat for p in parts for lat in p[3]],
    )


async def _paced(port: int, payloads: list[bytes], rate: float, start: float) -> list[tuple[float, int]]:
    async def one(n: int, payload: bytes) -> tuple[float, int]:
        await asyncio.sleep(max(0.0, start + n / rate - time.time()))
        sent_at = time.time()
        try:
            return sent_at, await _send(port, payload)
        except OSError:
            return sent_at, 0

    return await asyncio.gather(*(one(n, payload) for n, payload in enumerate(payloads)))


def paced(port: int, payloads: list[bytes], *, rate: float, start: float) -> list[tuple[float, int]]:
    """Open-loop load: payload n is sent at `start + n / rate` (wall clock) on a fresh connection, whether or
    not earlier answers came; returns when each was sent and its status (0 when no answer came). The
    payloads are prepared before, so the sender costs the measured machine as little as it can."""
    return asyncio.run(_paced(port, payloads, rate, start))


@dataclass
class LoadResult:
    """What processes of load generators sent: answers by status, latencies, and the burst's first and last
    instants (monotonic)."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def seconds(self) -> float:
        return max(1e-9, self.finished - self.started)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def run_processes(target: Callable[..., None], spec: Any, processes: int) -> LoadResult:
    """Run `target(spec, index, processes, ready, go, out)` in `processes` spawned processes, start them
    together once all are ready, and sum what each puts on `out` as (statuses, latencies, started,
    finished)."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=target, args=(spec, i, processes, ready, go, out), daemon=True)
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=300)
        go.set()
        parts = [out.get(timeout=1800) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    total = LoadResult(started=min(p[2] for p in parts), finished=max(p[3] for p in parts))
    for statuses, latencies, _, _ in parts:
        for status, count in statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
        total.latencies_ms.extend(latencies)
    return total


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]
