"""The sandboxes' HTTP server: a threaded WSGI server that keeps HTTP/1.1 connections open between requests.

The stand-ins for other services (the platform's webhook receiver, the store emulators) are served from a
background thread of the process that uses them. Werkzeug's development server closes every connection after
one answer, so each request there paid a TCP connect and a new server thread, which no real receiver or store
costs its callers: a client's connection pool (the webhook dispatcher's, the store clients') never got to
reuse a connection. This server answers requests on a connection one after another until the client closes it
(or sends `Connection: close`, or stays idle for `IDLE_SECONDS`), one thread per connection.

A request's body (sized or chunked) is read whole before the app runs (a sandbox's bodies are small), so the
next request on the connection always starts where this one ended, whatever the app read. `SOCKET` in the
environ is the connection's socket, for a fault that drops it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)

SOCKET: Final = "sandbox.socket"
"""The environ key of the connection's socket (a fault closes it to drop the connection)."""
IDLE_SECONDS: Final = 60.0
"""How long a connection may stay idle (or a request take to arrive) before the server closes it."""
MAX_LINE: Final = 65536


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    disable_nagle_algorithm = True
    server: KeepAliveServer

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_LINE:
            self.send_error(414)
            self.close_connection = True
            return
        if not self.parse_request():
            return
        try:
            self._run_wsgi()
        except OSError:  # the client went away, or the app dropped the connection on purpose
            self.close_connection = True
        except ValueError:  # a Content-Length or chunk size that is not a number
            self.send_error(400, "malformed body framing")

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            SOCKET: self.connection,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _body(self) -> bytes:
        """The request's body, whole: by its Content-Length, or its chunks up to the last."""
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""
        chunks = []
        while size := int(self.rfile.readline(MAX_LINE).split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline(MAX_LINE)  # the CRLF after the chunk
        while self.rfile.readline(MAX_LINE).strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)

    def _run_wsgi(self) -> None:
        body = self._body()
        answer: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            answer["status"], answer["headers"] = status, headers
            return lambda data: None  # the legacy write() callable: the sandboxes do not use it

        result: Iterable[bytes] = self.server.app(self._environ(body), start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        lines = [f"{self.protocol_version} {answer['status']}"]
        names = set()
        for name, value in answer["headers"]:
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(content)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + content)  # one write: one segment
        self.log_request(answer["status"].partition(" ")[0], len(content))

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox request", extra={"request": format % args})


class KeepAliveServer(ThreadingHTTPServer):
    """Serves `app` on `host`:`port` (0 picks a free port) with HTTP/1.1 persistent connections.
    `server_close()` ends the open connections too: no connection's thread is left waiting on an idle client."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, port: int, app: WSGIApplication):
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside the app (which answers its own errors): one line, no traceback."""
        error = sys.exc_info()[1]
        logger.warning(
            "sandbox connection failed",
            extra={"client": f"{client_address[0]}:{client_address[1]}", "error": repr(error)[:200]},
        )

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
