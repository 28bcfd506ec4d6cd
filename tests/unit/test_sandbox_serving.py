"""The sandboxes' keep-alive WSGI server: requests answered one after another on one connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.sandbox.serving import SOCKET, KeepAliveServer


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/port":
        start_response("200 OK", [])
        return [environ["REMOTE_PORT"].encode()]
    if environ["PATH_INFO"] == "/drop":
        sock = environ[SOCKET]
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        start_response("500 INTERNAL SERVER ERROR", [])
        return [b""]
    body = environ["wsgi.input"].read()
    seen = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']} "
    seen += f"{environ.get('HTTP_WM_SEC.ACCESS_TOKEN', '-')} {len(body)} {body[:20].decode()}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [seen.encode()]


@pytest.fixture
def server() -> Iterator[Any]:
    srv = KeepAliveServer("127.0.0.1", 0, _app)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(rest) < length:
        rest += sock.recv(4096)
    return head + b"\r\n\r\n" + rest


def test_requests_on_one_connection_are_answered_in_turn(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
        first = _exchange(sock, b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        second = _exchange(sock, b"GET /b HTTP/1.1\r\nHost: h\r\nWM_SEC.ACCESS_TOKEN: tok\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first.endswith(b"POST /a?x=1 - 5 hello")
    assert b"connection: close" not in first.lower()
    assert second.endswith(b"GET /b? tok 0 "), "a header named with underscores reaches the app"


def test_a_client_pool_reuses_its_connection(server: Any) -> None:
    session = requests.Session()
    base = f"http://127.0.0.1:{server.server_port}"
    answers = [session.post(f"{base}/c", data=b"x" * n) for n in (1, 2, 3)]
    assert [a.text for a in answers] == [f"POST /c? - {n} {'x' * n}" for n in (1, 2, 3)]
    ports = {session.get(f"{base}/port").text for _ in range(3)}
    assert len(ports) == 1, "every request came on the same connection"


def test_a_chunked_body_is_read_whole(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
        answer = _exchange(
            sock,
            b"POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n",
        )
        after = _exchange(sock, b"GET /e HTTP/1.1\r\nHost: h\r\n\r\n")
    assert answer.endswith(b"POST /d? - 7 abcdefg")
    assert after.endswith(b"GET /e? - 0 ")


def test_connection_close_is_honoured(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
        answer = _exchange(sock, b"GET /f HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert b"Connection: close" in answer
        assert sock.recv(10) == b"", "the server closed the connection"


def test_head_answers_without_a_body(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
        sock.sendall(b"HEAD /g HTTP/1.1\r\nHost: h\r\n\r\n")
        data = sock.recv(4096)
        sock.sendall(b"GET /h HTTP/1.1\r\nHost: h\r\n\r\n")
        following = _exchange(sock, b"")
    assert data.endswith(b"\r\n\r\n") and b"Content-Length: 13" in data
    assert following.endswith(b"GET /h? - 0 ")


def test_the_app_may_drop_the_connection(server: Any) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.server_port}/drop", timeout=5)
    assert requests.get(f"http://127.0.0.1:{server.server_port}/i", timeout=5).status_code == 200


def test_closing_the_server_ends_idle_connections() -> None:
    srv = KeepAliveServer("127.0.0.1", 0, _app)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    before = {t.ident for t in threading.enumerate()}
    sock = socket.create_connection(("127.0.0.1", srv.server_port))
    try:
        _exchange(sock, b"GET /j HTTP/1.1\r\nHost: h\r\n\r\n")
        handlers = [t for t in threading.enumerate() if t.ident not in before]
        assert handlers, "the connection has a thread of its own"
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
        for handler in handlers:
            handler.join(timeout=5)
            assert not handler.is_alive(), "closing the server ended the idle connection's thread"
    finally:
        sock.close()


def test_a_malformed_chunk_size_is_a_400(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
        sock.sendall(b"POST /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
