"""Which destinations an outbound webhook may reach: public addresses only, unless private ones are allowed."""

from __future__ import annotations

import ipaddress
import logging
import socket

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddressError(Exception):
    """A destination resolved to an address outbound webhooks must not reach."""


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


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself); raises OSError when it does not."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def check_host(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses of `host` that may be called; raises BlockedAddressError if any of them is not public
    (a name with one private answer among public ones is refused as a whole) or if it does not resolve."""
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise BlockedAddressError(f"host {host!r} does not resolve ({exc.strerror or exc})") from None
    if not addresses:
        raise BlockedAddressError(f"host {host!r} does not resolve")
    if not allow_private:
        blocked = [str(a) for a in addresses if not is_public(a)]
        if blocked:
            logger.warning("outbound address refused", extra={"host": host, "addresses": blocked})
            raise BlockedAddressError(
                f"host {host!r} resolves to a private or reserved address ({', '.join(blocked)})"
            )
    return addresses
