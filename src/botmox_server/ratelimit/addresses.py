"""Which client a request comes from: the direct peer, or — only when that peer is a configured
trusted proxy — the right-most address in ``X-Forwarded-For`` that is not a trusted proxy.

By default no proxy is trusted, so ``X-Forwarded-For`` is ignored and every client behind a
reverse proxy shares the proxy's address: list the proxy in ``BOTMOX_RATE_LIMIT_TRUSTED_PROXIES``.
Addresses are bucketed per IPv4 address and per IPv6 ``/64`` (one subscriber's usual allocation,
so rotating through its own addresses gains nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["ClientAddressResolver", "address_bucket"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_PREFIX = 64


def _parse(text: str) -> IpAddress | None:
    """An address from a peer or ``X-Forwarded-For`` entry (``1.2.3.4``, ``1.2.3.4:5678``,
    ``2001:db8::1``, ``[2001:db8::1]:443``); ``None`` when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_bucket(address: IpAddress | str) -> str:
    """The bucket text of an address: the IPv4 address, or the IPv6 ``/64`` network."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


class ClientAddressResolver:
    """Resolves the client address of a request from its peer and ``X-Forwarded-For``."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        )

    @property
    def trusts_proxies(self) -> bool:
        return bool(self._trusted)

    def is_trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> IpAddress | str:
        """The client address. ``forwarded_for`` holds the ``X-Forwarded-For`` header values in
        arrival order (several headers are one list). Walking from the right, trusted proxies
        are skipped and the first other address is the client; a malformed entry ends the walk
        at the last address known good (the hop that appended it is trusted, the entry is not);
        when every entry is a trusted proxy the left-most one is the client. A peer that is not
        an IP address (a Unix socket, a test client) is returned as it is."""
        if not peer:
            return "unknown"
        client = _parse(peer)
        if client is None:
            return peer
        if not forwarded_for or not self._trusted or not self.is_trusted(client):
            return client
        entries = [part for value in forwarded_for for part in value.split(",")]
        for entry in reversed(entries):
            hop = _parse(entry)
            if hop is None:
                return client
            client = hop
            if not self.is_trusted(hop):
                return hop
        return client
