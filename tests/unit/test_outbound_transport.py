"""The outbound transport keeps connections to an endpoint that keeps them, whatever the answer's size."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhooks.outbound import transport


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()  # client ports seen
    body = b"ok"
    delay = 0.0
    release = threading.Event()  # ends a delay early
    answered = threading.Event()  # set once the handler is done with a request, answer sent or not
    seen: list[tuple[str, dict[str, str], bytes]] = []  # path, headers, body of each request

    def do_POST(self) -> None:
        sent = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append((self.path, dict(self.headers.items()), sent))
        type(self).connections.add(self.client_address[1])
        type(self).release.wait(self.delay)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        except OSError:  # the client stopped waiting and closed the connection
            self.close_connection = True
        finally:
            type(self).answered.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_KeepAlive]]]:
    handler = type(
        "Handler",
        (_KeepAlive,),
        {"connections": set(), "seen": [], "release": threading.Event(), "answered": threading.Event()},
    )
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
    transport._adapters.clear()
    results = [transport.post(url, b"{}", {}, timeout=5, allow_private=True) for _ in range(5)]
    assert [r.status_code for r in results] == [200] * 5
    assert all(
        r.excerpt is not None and len(r.excerpt) == min(size, transport.EXCERPT_BYTES) for r in results
    )
    assert len(handler.connections) == 1


def test_a_long_answer_is_not_read_to_its_end_and_its_connection_goes(server) -> None:
    url, handler = server
    handler.body = b"x" * (transport.EXCERPT_BYTES + transport.DRAIN_BYTES + 10)
    transport._adapters.clear()
    results = [transport.post(url, b"{}", {}, timeout=5, allow_private=True) for _ in range(3)]
    assert [r.status_code for r in results] == [200] * 3
    assert len(handler.connections) == 3


def test_the_endpoint_gets_the_body_and_headers_at_its_path_and_query(server) -> None:
    url, handler = server
    result = transport.post(
        f"{url}?token=a%20b", b'{"a":1}', {"webhook-id": "msg_1"}, timeout=5, allow_private=True
    )
    assert result.status_code == 200 and result.excerpt == "ok" and result.error is None
    ((path, headers, body),) = handler.seen
    assert path == "/hooks?token=a%20b" and body == b'{"a":1}'
    assert headers["webhook-id"] == "msg_1"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == transport.USER_AGENT
    assert headers["Content-Length"] == "7"


def test_an_answer_slower_than_the_timeout_is_a_failure_that_says_so(server) -> None:
    url, handler = server
    handler.delay = 10.0
    result = transport.post(url, b"{}", {}, timeout=0.2, allow_private=True)
    assert result.status_code is None and result.error == "timed out" and not result.blocked
    handler.release.set()  # the late answer goes to a closed connection, inside this test
    assert handler.answered.wait(5)


def test_a_closed_port_is_a_connection_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    result = transport.post(f"http://127.0.0.1:{port}/hooks", b"{}", {}, timeout=5, allow_private=True)
    assert result.status_code is None and not result.blocked
    assert result.error is not None and result.error.startswith("connection failed")
