"""The flash-sale benchmark's buyers: purchase attempts sent from load processes of their own (asyncio, one
kept-alive connection per buyer), each answer timed and counted.

The load processes run `_load_process`, so this module imports only the standard library and light modules
of the project (the warm-up requests, sent from the bench process, are `connector.bench.flash_sale.warm`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from connector.bench.load import LoadResult, run_processes

logger = logging.getLogger(__name__)

ACCEPTED, REFUSED = 201, 409
FLASH_PRICE_MINOR: Final = 1_999


@dataclass(frozen=True, slots=True)
class SaleSpec:
    """What every buyer sends: the live session, the pinned variant, the API key and the attempts."""

    port: int
    auth: str
    live_session_id: int
    variant_id: int
    buyers: int
    attempts: int
    tag: str
    click_ids: tuple[str, ...] = ()
    """Clicks on creators' links: every `linked_every`-th buyer carries one (its attribution) in each order."""
    linked_every: int = 0


def _order(spec: SaleSpec, buyer: int) -> dict[str, Any]:
    order: dict[str, Any] = {
        "lines": [{"variant_id": spec.variant_id, "quantity": 1, "unit_price_minor": FLASH_PRICE_MINOR}],
        "currency": "USD",
        "buyer": {"ref": f"buyer-{buyer}"},
        "live_session_id": spec.live_session_id,
    }
    if spec.click_ids and spec.linked_every and buyer % spec.linked_every == 0:
        click = spec.click_ids[(buyer // spec.linked_every) % len(spec.click_ids)]
        order["attribution"] = {"click_ids": [click]}
    return order


def _request(spec: SaleSpec, buyer: int, attempt: int) -> bytes:
    body = json.dumps(_order(spec, buyer), separators=(",", ":")).encode()
    head = (
        f"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{spec.port}\r\nConnection: keep-alive\r\n"
        f"Authorization: Bearer {spec.auth}\r\nIdempotency-Key: {spec.tag}-{buyer}-{attempt}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _plan(spec: SaleSpec, process: int, processes: int) -> dict[int, list[bytes]]:
    """Process `process`'s buyers and their prepared requests (attempts dealt out round-robin)."""
    mine = [b for b in range(spec.buyers) if b % processes == process]
    plan: dict[int, list[bytes]] = {b: [] for b in mine}
    for attempt in range(spec.attempts):
        buyer = attempt % spec.buyers
        if buyer in plan:
            plan[buyer].append(_request(spec, buyer, attempt))
    return plan


async def _exchange(
    port: int, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, payload: bytes
) -> tuple[int, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """Send one request on `conn` (opened when None); returns the status and the connection if still open."""
    if conn is None:
        conn = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = conn
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    if close:
        writer.close()
        return status, None
    return status, conn


async def _buyers(port: int, plan: dict[int, list[bytes]]) -> LoadResult:
    result = LoadResult(started=time.monotonic())

    async def buyer(payloads: list[bytes]) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for payload in payloads:
            began = time.monotonic()
            try:
                status, conn = await _exchange(port, conn, payload)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, conn = 0, None
            result.latencies_ms.append((time.monotonic() - began) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(buyer(payloads) for payloads in plan.values()))
    result.finished = time.monotonic()
    return result


def _load_process(spec: SaleSpec, index: int, processes: int, ready: Any, go: Any, out: Any) -> None:
    plan = _plan(spec, index, processes)  # prepared before the clock starts
    ready.put(index)
    go.wait()
    result = asyncio.run(_buyers(spec.port, plan))
    out.put((result.statuses, result.latencies_ms, result.started, result.finished))


def load(spec: SaleSpec, *, processes: int = 2) -> LoadResult:
    """Every attempt of `spec`, sent by its buyers from `processes` processes started together; the rate is
    over the whole burst (first request sent to last answer read)."""
    return run_processes(_load_process, spec, processes)


def race(spec: SaleSpec) -> LoadResult:
    """Every attempt of `spec`, sent by its buyers from this process's event loop: for a sale whose outcome
    is the point (the demo), not a rate measured apart from the sender's own work."""
    return asyncio.run(_buyers(spec.port, _plan(spec, 0, 1)))
