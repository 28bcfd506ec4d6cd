"""Opens a product feed as a stream: an http(s) URL read in chunks, or a local file when allowed.

Nothing here reads a whole feed into memory, and every failure leaves as a `connector.domain.errors` type: HTTP
statuses and transport failures through `connector.infra.http`, missing or unreadable files as `PermanentError`.
Every connection, redirects included, goes only to an address `connector.infra.addresses` allows (public ones
unless `HttpOptions.allow_private`); local files are read only with `HttpOptions.allow_files`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import urllib3.exceptions

from connector.domain.errors import PermanentError, RetryableError, ValidationError
from connector.domain.ports import HttpOptions
from connector.infra.http import (
    guarded_session,
    raise_for_status,
    retrying,
    safe_url,
    translate,
    transport_errors,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
PRIVATE_HINT = " (FEED_ALLOW_PRIVATE_URLS=true allows private, loopback and link-local addresses)"


def is_remote(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")


def local_path(url: str) -> str:
    """The filesystem path of a file:// URL or a plain path."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            raise PermanentError(f"file URL {url!r} names a remote host", code="invalid_url")
        return url2pathname(parts.path)
    return url


class _ResponseStream(io.RawIOBase):
    """A streamed response body as a raw binary file, read chunk by chunk; read failures are translated."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__()
        self._response = response
        self._chunks = response.iter_content(CHUNK_BYTES)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise translate(exc) from exc
            self._pending = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


class FeedClient:
    """One feed location. `open_binary`/`open_text` are context managers yielding a stream of the body."""

    def __init__(
        self,
        url: str,
        http: HttpOptions,
        credentials: Mapping[str, str] | None = None,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.remote = is_remote(url)
        query = (credentials or {}).get("url_query")
        self._fetch_url = f"{url}?{query}" if query and self.remote else url
        """The URL fetched: `url` with the query string kept in the credentials (it may carry tokens)."""
        self._http = http
        self._session = session
        self._credentials = dict(credentials or {})
        username = self._credentials.get("username")
        password = self._credentials.get("password")
        if (username is None) != (password is None):
            raise ValidationError("feed credentials need both username and password, or neither")

    @property
    def location(self) -> str:
        """Where the feed is, without secrets: for messages and logs."""
        return safe_url(self.url) if self.remote else local_path(self.url)

    def _session_for_request(self) -> requests.Session:
        if self._session is None:
            session = guarded_session(self._http, PRIVATE_HINT)
            username = self._credentials.get("username")
            password = self._credentials.get("password")
            if username is not None and password is not None:
                session.auth = (username, password)
            token = self._credentials.get("token")
            if token:
                session.headers["Authorization"] = f"Bearer {token}"
            self._session = session
        return self._session

    @retrying()
    def _get(self) -> requests.Response:
        session = self._session_for_request()
        with transport_errors():
            response = session.get(self._fetch_url, stream=True, timeout=self._http.timeout)
        return raise_for_status(response, quote_body=False)  # a feed's error page is never echoed

    def _open_file(self, encoding: str | None) -> IO[Any]:
        """The local feed file, binary when `encoding` is None, else text with newlines kept as written."""
        if not self._http.allow_files:
            raise PermanentError(
                "local feed files are disabled (FEED_ALLOW_FILES=false); use an http(s) URL",
                code="files_disabled",
            )
        path = local_path(self.url)
        try:
            if encoding is None:
                return open(path, "rb", buffering=CHUNK_BYTES)
            return open(path, encoding=encoding, newline="", buffering=CHUNK_BYTES)
        except FileNotFoundError:
            raise PermanentError(f"feed file {path} does not exist", code="feed_not_found") from None
        except IsADirectoryError:
            raise PermanentError(f"feed path {path} is a directory", code="feed_not_found") from None
        except PermissionError:
            raise PermanentError(f"feed file {path} is not readable", code="feed_unreadable") from None
        except OSError as exc:
            raise RetryableError(f"feed file {path} could not be opened: {exc.strerror}", code="io") from exc

    @contextmanager
    def open_binary(self) -> Iterator[IO[bytes]]:
        """The feed body as a buffered binary stream (HTTP content-encoding already undone)."""
        if self.remote:
            response = self._get()
            logger.debug("feed response opened", extra={"url": self.location, "status": response.status_code})
            stream: IO[bytes] = io.BufferedReader(_ResponseStream(response), CHUNK_BYTES)
        else:
            stream = self._open_file(None)
        try:
            yield stream
        finally:
            stream.close()

    @contextmanager
    def open_text(self, encoding: str) -> Iterator[IO[str]]:
        """The feed body decoded as text with newlines kept as written (what the csv module needs)."""
        if self.remote:
            response = self._get()
            raw = io.BufferedReader(_ResponseStream(response), CHUNK_BYTES)
            text: IO[str] = io.TextIOWrapper(raw, encoding=encoding, newline="")
        else:
            text = self._open_file(encoding)
        try:
            yield text
        finally:
            text.close()
