"""Which addresses outbound calls (webhooks, feed fetches) may reach, and connections that open only to them.

Public addresses only, unless private ones are allowed. A host name is resolved with a time bound, and a
guarded connection connects to exactly the address that passed the check, so a name that resolves to a
public address when it is checked and to a private one when it is called (DNS rebinding), or a redirect to
a private address, is refused at connect time. Refusals never say what a name resolved to.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT = 5.0
"""Longest a host name lookup may take before the host counts as not resolving."""

lookup: Callable[..., list[tuple[Any, ...]]] = socket.getaddrinfo
"""The resolver (`socket.getaddrinfo`); replaceable in tests."""


class BlockedAddressError(Exception):
    """A destination that must not be called: its address is not allowed, or its name does not resolve."""


class UnresolvedHostError(BlockedAddressError):
    """A destination whose name does not resolve, or not in time."""


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses; False for private, loopback, link-local (cloud metadata),
    multicast, reserved, unspecified and shared (CGNAT) ranges, including IPv4 mapped into IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None and not is_public(mapped):
            return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _bounded_lookup(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """`lookup(host, port)` in a daemon thread, given up on after `timeout` seconds (TimeoutError)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["infos"] = lookup(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"looking up {host!r} took longer than {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    infos: list[tuple[Any, ...]] = outcome["infos"]
    return infos


def resolve(host: str, port: int, *, timeout: float | None = None) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself); raises OSError when it does not,
    TimeoutError (an OSError) when the lookup takes longer than `timeout` (default `RESOLVE_TIMEOUT`)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = _bounded_lookup(host, port, RESOLVE_TIMEOUT if timeout is None else timeout)
    seen: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def check_host(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses of `host` that may be called; raises BlockedAddressError if any of them is not public
    (a name with one private answer among public ones is refused as a whole) or if it does not resolve in
    time. The message names the host, never its addresses."""
    try:
        addresses = resolve(host, port)
    except TimeoutError:
        logger.warning("host lookup timed out", extra={"host": host, "timeout": RESOLVE_TIMEOUT})
        raise UnresolvedHostError(f"host {host!r} did not resolve in time") from None
    except OSError:
        raise UnresolvedHostError(f"host {host!r} does not resolve") from None
    if not addresses:
        raise UnresolvedHostError(f"host {host!r} does not resolve")
    if not allow_private:
        blocked = [str(a) for a in addresses if not is_public(a)]
        if blocked:
            logger.warning("outbound address refused", extra={"host": host, "addresses": blocked})
            raise BlockedAddressError(f"the address of host {host!r} is not allowed")
    return addresses


class BlockedConnectionError(NewConnectionError):
    """The destination's address is not allowed (raised at connect time, inside requests' exceptions)."""


def _guarded_connect(conn: HTTPConnection, allow_private: bool, hint: str) -> socket.socket:
    host = conn.host
    port = conn.port or 0
    try:
        addresses = check_host(host, port, allow_private=allow_private)
    except UnresolvedHostError as exc:
        raise BlockedConnectionError(conn, str(exc)) from None
    except BlockedAddressError as exc:
        raise BlockedConnectionError(conn, f"{exc}{hint}") from None
    last: OSError | None = None
    for address in addresses:
        try:
            return urllib3_connection.create_connection(
                (str(address), port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(conn, f"connection to {host} timed out") from exc
        except OSError as exc:
            last = exc
    raise NewConnectionError(conn, f"failed to connect to {host}: {last}")


def _pool_classes(allow_private: bool, hint: str) -> dict[str, type[HTTPConnectionPool]]:
    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_connect(self, allow_private, hint)

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_connect(self, allow_private, hint)

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections open only to addresses that pass the private-range rule; every
    connection is checked, so every redirect hop is too. Mount it on a session with `trust_env = False`
    (a proxy from the environment would connect on our behalf, unchecked). `refusal_hint` is added to the
    message of an address refused, e.g. to name the setting that allows it."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        pool_maxsize: int = 10,
        max_retries: int = 0,
        refusal_hint: str = "",
    ):
        self.allow_private = allow_private
        self.refusal_hint = refusal_hint
        super().__init__(max_retries=max_retries, pool_maxsize=pool_maxsize)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: object
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.allow_private, self.refusal_hint)


def blocked_reason(exc: BaseException) -> str | None:
    """The refusal message when `exc` (a requests/urllib3 exception) wraps a `BlockedConnectionError`."""
    reason: BaseException | None = exc
    for _ in range(6):
        if isinstance(reason, BlockedConnectionError):
            return str(reason._message)
        if reason is None:
            return None
        inner = getattr(reason, "reason", None)
        if inner is None and reason.args and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        reason = inner if isinstance(inner, BaseException) else None
    return None
