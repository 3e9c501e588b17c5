"""Client identity behind proxies (pure, no I/O): who is this request for the rate limit?

The socket peer is the client, unless the peer is a trusted proxy. Then the proxy chain in
``X-Forwarded-For`` (or RFC 7239 ``Forwarded``) is read right to left, because each proxy
appends the address it saw: the rightmost entries were written by our own proxies, everything
to the left of the first untrusted address was written by the client and may be forged. So
the answer is the rightmost address that is not a trusted proxy. The leftmost entry is only
returned when every hop is a trusted proxy, that is when no untrusted party wrote any of it.

Anything malformed where we must read it (garbage, empty entries, ``unknown`` or obfuscated
``_hidden`` identifiers, too many hops) falls back to the peer: a client can then at worst be
counted as its proxy, never as an address of its choosing.

Example:
    >>> resolver = ClientIPResolver(trusted_proxies=("10.0.0.0/8",))
    >>> resolver.resolve("10.0.0.2", x_forwarded_for="6.6.6.6, 203.0.113.9")
    '203.0.113.9'
    >>> resolver.resolve("198.51.100.7", x_forwarded_for="6.6.6.6")  # untrusted peer
    '198.51.100.7'
    >>> rate_limit_key("2001:db8:1:2:3:4:5:6")
    '2001:db8:1:2::/64'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Literal

from fender.errors import ConfigurationError

__all__ = ["ClientIPResolver", "parse_node", "rate_limit_key"]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Longest textual address we parse: a bracketed full IPv6 with an IPv4 tail and a port.
_MAX_NODE = 64
_MAX_PORT_DIGITS = 5
_MAX_PORT = 65_535


def parse_node(text: str) -> Address | None:
    """Parse one proxy-chain entry into an address, or None when it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:80`` (optionally quoted, as in ``Forwarded``). Refuses ``unknown``,
    obfuscated identifiers (``_hidden``), zone ids and anything else. IPv4-mapped IPv6
    addresses become IPv4 so that one client has one identity.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':  # noqa: PLR2004  (a pair of quotes)
        text = text[1:-1]
    if not text or len(text) > _MAX_NODE or "%" in text:
        return None
    if text[0] == "[":
        end = text.find("]")
        if end < 0 or not _is_port_suffix(text[end + 1 :]):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 has two colons or more
        text, _, port = text.partition(":")
        if not _is_port_suffix(":" + port):
            return None
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port_suffix(text: str) -> bool:
    """True for "" or ":" and a port number (0 to 65535 in ASCII digits)."""
    if not text:
        return True
    digits = text[1:]
    return (
        text[0] == ":"
        and 0 < len(digits) <= _MAX_PORT_DIGITS
        and digits.isascii()
        and digits.isdigit()
        and int(digits) <= _MAX_PORT
    )


def _forwarded_for(element: str) -> str | None:
    """The ``for=`` value of one ``Forwarded`` element, or None."""
    found = None
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            return None
        if name.strip().lower() == "for":
            if found is not None:  # two "for" in one element: ambiguous
                return None
            found = value
    return found


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientIPResolver:
    """Finds the client address from the peer and the proxy headers; parsed once at start-up.

    Args:
        trusted_proxies: CIDRs (or single addresses) of our own proxies; empty (the default)
            trusts none, so the headers are ignored and the peer is the client.
        trusted_hops: instead of (or on top of) ``trusted_proxies``: the number of proxies in
            front of the app; the client is the entry that many places from the right. Only
            safe if no client can reach the app without passing every proxy. 0 (the default)
            turns this mode off. With ``trusted_proxies`` set too, the peer must be trusted.
        header: ``"x-forwarded-for"`` (default) or ``"forwarded"`` (RFC 7239). One header
            only: reading both would let a client pick the one our proxy does not rewrite.
        max_hops: the most entries read from the right before giving up (peer fallback).
    """

    trusted_proxies: tuple[str, ...] = ()
    trusted_hops: int = 0
    header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    max_hops: int = 16
    networks: tuple[Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse the trusted networks; reject bad settings naming the field."""
        if isinstance(self.trusted_proxies, str):
            raise ConfigurationError(
                "trusted_proxies", self.trusted_proxies, "a list of CIDRs, not one string"
            )
        networks = []
        for cidr in self.trusted_proxies:
            if not isinstance(cidr, str) or cidr.strip() in {"*", ""}:
                raise ConfigurationError(
                    "trusted_proxies",
                    cidr,
                    "a CIDR such as 10.0.0.0/8 (trusting every address would let any client"
                    " forge its identity; use trusted_hops for that)",
                )
            try:
                networks.append(ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    "trusted_proxies", cidr, "a CIDR such as 10.0.0.0/8 or fd00::/8"
                ) from None
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))
        object.__setattr__(self, "networks", tuple(networks))
        if not isinstance(self.max_hops, int) or self.max_hops < 1:
            raise ConfigurationError("max_hops", self.max_hops, "an integer >= 1")
        if not isinstance(self.trusted_hops, int) or not 0 <= self.trusted_hops <= self.max_hops:
            raise ConfigurationError(
                "trusted_hops", self.trusted_hops, f"an integer from 0 to {self.max_hops}"
            )
        if self.header not in {"x-forwarded-for", "forwarded"}:
            raise ConfigurationError("header", self.header, '"x-forwarded-for" or "forwarded"')

    def is_trusted(self, address: Address) -> bool:
        """True when ``address`` is one of our proxies."""
        return any(address in network for network in self.networks)

    def resolve(
        self, peer: str, *, x_forwarded_for: str | None = None, forwarded: str | None = None
    ) -> str:
        """Return the client address: a canonical IP string, or ``peer`` itself.

        Args:
            peer: the socket peer's host (ASGI ``scope["client"][0]``, WSGI ``REMOTE_ADDR``).
            x_forwarded_for: the ``X-Forwarded-For`` value, repeated headers joined by ``,``.
            forwarded: the ``Forwarded`` value, repeated headers joined by ``,``.

        With proxies configured, a peer without an address (``""``: a unix socket, which only
        local processes such as the proxy can connect to) is a trusted hop. Never raises on
        any header content.
        """
        peer_address = parse_node(peer) if peer else None
        fallback = peer if peer_address is None else str(peer_address)
        if not self.networks and not self.trusted_hops:
            return fallback
        # No peer address: a unix socket, which only local processes (our proxy) can reach;
        # a trusted hop, as gunicorn treats it. Any other unparsable peer is not trusted.
        trusted_peer = not peer or (peer_address is not None and self.is_trusted(peer_address))
        if self.networks and not trusted_peer:
            return fallback
        value = forwarded if self.header == "forwarded" else x_forwarded_for
        address = self._from_chain(value) if value else None
        return fallback if address is None else str(address)

    def _from_chain(self, value: str) -> Address | None:
        """The client address from a trusted peer's proxy chain; None means the peer."""
        # rsplit bounds the work from the right; an overlong chain leaves commas in the
        # leftmost piece, which then fails to parse and falls back to the peer.
        entries = value.rsplit(",", self.max_hops)
        entries.reverse()
        if self.header == "forwarded":
            nodes = [_forwarded_for(element) for element in entries]
        else:
            nodes = list(entries)
        if self.trusted_hops:
            if len(nodes) < self.trusted_hops:
                return None
            node = nodes[self.trusted_hops - 1]
            return None if node is None else parse_node(node)
        address = None
        for node in nodes:
            address = None if node is None else parse_node(node)
            if address is None or not self.is_trusted(address):
                return address
        # Every hop is one of our proxies: no untrusted party wrote any of the chain.
        return address


@functools.lru_cache(maxsize=65536)
def rate_limit_key(ip: str, *, ipv6_prefix: int = 64) -> str:
    """The rate-limit identity of an address: IPv4 as is, IPv6 grouped by its /64.

    One IPv6 subscriber usually holds a whole /64, so counting single addresses would give
    each client 2**64 identities. Anything that is not an address is returned unchanged.

    Args:
        ip: an address (typically from :meth:`ClientIPResolver.resolve`).
        ipv6_prefix: the IPv6 prefix length that makes one identity (default 64).
    """
    # Cached: parsing an address with ipaddress costs about 7 µs, and clients come back.
    address = parse_node(ip)
    if address is None:
        return ip
    if isinstance(address, IPv4Address):
        return str(address)
    return str(IPv6Network((address, ipv6_prefix), strict=False))
