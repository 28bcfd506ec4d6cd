"""A feed host for tests: a threading HTTP server on a loopback address that records what it was asked."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CSV = b"id,title,price,quantity\nINTERNAL-1,Internal secret row,1.00 USD,5\n"
ERROR_PAGE = b"<html>admin console: INTERNAL-SECRET token=abc123</html>"


class FeedServer:
    """A feed host on a loopback address: `/feed.csv` serves CSV, `/hop` redirects to `target`, `/missing`
    answers 404 with an error page full of secrets."""

    def __init__(self, host: str, target: str = "") -> None:
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        requests, headers = self.requests, self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                headers.append(dict(self.headers))
                if self.path.startswith("/hop"):
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.startswith("/missing"):
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(ERROR_PAGE)))
                    self.end_headers()
                    self.wfile.write(ERROR_PAGE)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(CSV)))
                self.end_headers()
                self.wfile.write(CSV)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
