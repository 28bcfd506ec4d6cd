"""The `showcase` benchmark's readers: closed-loop reads of a showcase page from load processes of their own
(asyncio, `concurrency` connections each, one request per connection), every answer parsed and timed.

Each read keeps when it began, its latency, its status and the sellable quantity it showed per product, so
the bench can tell stale reads afterwards. The load processes run `_reader_process`, so this module imports
only the standard library.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from typing import Any

from connector.bench.load import exchange, status_of

Read = tuple[float, float, int, dict[int, int]]
"""(wall-clock start, latency ms, status, sellable per product id)."""


async def _read(port: int, payload: bytes) -> tuple[int, bytes]:
    head, _, body = (await exchange(port, payload)).partition(b"\r\n\r\n")
    status = status_of(head)
    return status, body if status else b""


async def _readers(port: int, payload: bytes, concurrency: int, seconds: float) -> list[Read]:
    stop_at = time.perf_counter() + seconds
    reads: list[Read] = []

    async def loop() -> None:
        while time.perf_counter() < stop_at:
            began, wall = time.perf_counter(), time.time()
            try:
                status, body = await _read(port, payload)
            except OSError:
                status, body = 0, b""
            latency = (time.perf_counter() - began) * 1000
            shown: dict[int, int] = {}
            if status == 200:
                shown = {item["product_id"]: item["sellable"] for item in json.loads(body)["items"]}
            reads.append((wall, latency, status, shown))

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return reads


def _reader_process(port: int, payload: bytes, concurrency: int, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_readers(port, payload, concurrency, seconds)))


def read_load(
    port: int, path: str, key: str, *, processes: int, concurrency: int, seconds: float
) -> list[Read]:
    """Closed-loop reads of `path` from `processes` processes of `concurrency` connections each."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    ).encode()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_reader_process, args=(port, request, concurrency, seconds, out))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        parts = [out.get(timeout=seconds + 300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    return [read for part in parts for read in part]
