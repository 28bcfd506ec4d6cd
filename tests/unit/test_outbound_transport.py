"""The outbound transport keeps connections to an endpoint that keeps them, whatever the answer's size."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhooks.outbound import transport


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()  # client ports seen
    body = b"ok"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).connections.add(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_KeepAlive]]]:
    handler = type("Handler", (_KeepAlive,), {"connections": set()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/hooks", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("size", [2, transport.EXCERPT_BYTES, transport.EXCERPT_BYTES + 5000])
def test_connections_are_reused_when_the_answer_is_read_to_its_end(server, size: int) -> None:
    url, handler = server
    handler.body = b"x" * size
    transport._sessions.clear()
    results = [transport.post(url, b"{}", {}, timeout=5, allow_private=True) for _ in range(5)]
    assert [r.status_code for r in results] == [200] * 5
    assert all(
        r.excerpt is not None and len(r.excerpt) == min(size, transport.EXCERPT_BYTES) for r in results
    )
    assert len(handler.connections) == 1


def test_a_long_answer_is_not_read_to_its_end_and_its_connection_goes(server) -> None:
    url, handler = server
    handler.body = b"x" * (transport.EXCERPT_BYTES + transport.DRAIN_BYTES + 10)
    transport._sessions.clear()
    results = [transport.post(url, b"{}", {}, timeout=5, allow_private=True) for _ in range(3)]
    assert [r.status_code for r in results] == [200] * 3
    assert len(handler.connections) == 3
