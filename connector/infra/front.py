"""The buffering front of `storelink up`: takes each HTTP request in whole before gunicorn sees it.

gunicorn's workers serve a request on one of their few threads and read its body as the client sends it, so a
client that sends slowly would hold a thread. The front (asyncio, one process) reads the request head and body of
every connection itself, bounded (64 KB of head, MAX_REQUEST_BYTES of body, at most MAX_CONNECTIONS at once, a
minute to send it all), and only then hands the request to gunicorn on a private loopback port, reading its
answer in whole too before sending it on. One request per connection: answers carry `Connection: close`.
In production, a proxy that buffers requests (nginx, a load balancer) plays this part in front of the
Procfile's `web`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal

from config.settings import load_settings
from connector.infra import logs

logger = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024
MAX_CONNECTIONS = 1000
REQUEST_SECONDS = 60.0
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"content-length",
    b"expect",
    b"upgrade",
    b"te",
}
PROBLEM_TYPE = "https://storelink.dev/problems/"


class RequestRefusedError(Exception):
    """The client's request cannot be taken: the status and problem code to answer with."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def problem(status: int, code: str, detail: str) -> bytes:
    """A complete HTTP answer carrying an RFC 9457 problem document."""
    body = json.dumps(
        {"type": PROBLEM_TYPE + code, "title": code.replace("_", " ").capitalize(), "status": status,
         "detail": detail, "code": code}
    ).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {code.replace('_', ' ').title()}\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _chunked_body(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise RequestRefusedError(400, "bad_request", "malformed chunked body") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > max_body:
            raise RequestRefusedError(
                413, "request_entity_too_large", f"request body larger than {max_body} bytes"
            )
        body += (await reader.readexactly(size + 2))[:-2]


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int, peer: str
) -> bytes:
    """The whole request from the client, re-framed for gunicorn (Content-Length, Connection: close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head[:-4].split(b"\r\n")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise RequestRefusedError(400, "bad_request", "malformed request header")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if fields.get(b"expect", b"").lower() == b"100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        body = await _chunked_body(reader, max_body)
    else:
        try:
            length = int(fields.get(b"content-length", b"0"))
        except ValueError:
            raise RequestRefusedError(400, "bad_request", "Content-Length is not a number") from None
        if length > max_body:
            raise RequestRefusedError(
                413, "request_entity_too_large", f"request body larger than {max_body} bytes"
            )
        body = await reader.readexactly(max(length, 0))
    kept = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() != b"x-forwarded-for"]
    forwarded = b", ".join([*(v for n, v in headers if n.lower() == b"x-forwarded-for"), peer.encode()])
    out = [request_line, *(n + b": " + v for n, v in kept)]
    out += [b"X-Forwarded-For: " + forwarded, b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(out) + b"\r\n\r\n" + body


class Front:
    """Listens on `listen`; each connection's request, taken in whole, goes to gunicorn at `upstream`."""

    def __init__(self, upstream: tuple[str, int], max_body: int) -> None:
        self.upstream = upstream
        self.max_body = max_body
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with self.slots:
                answer = await self._answer(reader, writer, str(peer[0]) if peer else "unknown")
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> bytes:
        try:
            request = await asyncio.wait_for(
                read_request(reader, writer, self.max_body, peer), REQUEST_SECONDS
            )
        except RequestRefusedError as exc:
            return problem(exc.status, exc.code, exc.detail)
        except TimeoutError:
            return problem(
                408, "request_timeout", f"the request was not sent in whole within {REQUEST_SECONDS:.0f} s"
            )
        except (asyncio.LimitOverrunError, ValueError):
            return problem(
                431, "request_header_fields_too_large", f"request head larger than {HEAD_LIMIT} bytes"
            )
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            logger.warning("web app not reachable", extra={"upstream": self.upstream, "error": str(exc)})
            return problem(502, "web_unavailable", "the web app is not answering; it is being restarted")
        try:
            up_writer.write(request)
            await up_writer.drain()
            return await up_reader.read()  # gunicorn closes after its answer (Connection: close)
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


async def serve(host: str, port: int, upstream: tuple[str, int], max_body: int) -> None:
    front = Front(upstream, max_body)
    server = await asyncio.start_server(front.handle, host, port, limit=HEAD_LIMIT, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    logger.info(
        "front listening", extra={"bind": f"{host}:{port}", "upstream": f"{upstream[0]}:{upstream[1]}"}
    )
    async with server:
        await stop.wait()


def run(host: str, port: int, upstream_port: int) -> None:
    """Serve on `host:port` in front of gunicorn on 127.0.0.1:`upstream_port` until SIGTERM, SIGINT or SIGHUP
    (`storelink front`, which `storelink up` runs)."""
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_json)
    asyncio.run(serve(host, port, ("127.0.0.1", upstream_port), settings.max_request_bytes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True, help="gunicorn's port on 127.0.0.1")
    args = parser.parse_args()
    run(args.host, args.port, args.upstream_port)


if __name__ == "__main__":
    main()
