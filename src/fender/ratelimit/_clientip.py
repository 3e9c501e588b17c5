"""Client identity behind proxies (pure, no I/O): who, over which scheme, for which host?

The one resolver of fender: the access log, the rate limiter, the admin CIDRs and the edge
(HTTPS redirects, allowed hosts, HSTS) all ask it, so they name the same client.

The socket peer is the client, unless the peer is a trusted proxy. Then the proxy chain in
``X-Forwarded-For`` (or RFC 7239 ``Forwarded``) is read right to left, because each proxy
appends the address it saw: the rightmost entries were written by our own proxies, everything
to the left of the first untrusted address was written by the client and may be forged. So
the answer is the rightmost address that is not a trusted proxy. The leftmost entry is only
returned when every hop is a trusted proxy, that is when no untrusted party wrote any of it.

Anything malformed where we must read it (garbage, empty entries, ``unknown`` or obfuscated
``_hidden`` identifiers, too many hops), or no chain at all from a trusted proxy, leaves the
client *unresolved*: :meth:`ClientIPResolver.resolve_request` says so (``trusted`` is False)
and names the peer as the address. A rate limit may count such a request as its proxy (a
client can then at worst share its proxy's budget, never pick an identity of its choosing);
nothing may admit it by network (the admin CIDRs refuse it).

The scheme and the host a proxy reports (``X-Forwarded-Proto`` / ``X-Forwarded-Host``, or
``proto=`` / ``host=`` of ``Forwarded``) are believed from a trusted peer only: a scheme must
be ``http`` or ``https``, a host a valid host name (:func:`fender.security._hosts.host_name`).

Example:
    >>> resolver = ClientIPResolver(trusted_proxies=("10.0.0.0/8",))
    >>> resolver.resolve("10.0.0.2", x_forwarded_for="6.6.6.6, 203.0.113.9")
    '203.0.113.9'
    >>> resolver.resolve("198.51.100.7", x_forwarded_for="6.6.6.6")  # untrusted peer
    '198.51.100.7'
    >>> resolver.resolve_request("10.0.0.2", Forwarding(x_forwarded_for="unknown")).trusted
    False
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
from typing import Final, Literal

from fender._http import NO_FORWARDING, Forwarding
from fender.errors import ConfigurationError
from fender.security._hosts import host_name

__all__ = ["ClientIPResolver", "Resolution", "parse_node", "rate_limit_key"]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Longest textual address we parse: a bracketed full IPv6 with an IPv4 tail and a port.
_MAX_NODE = 64
_MAX_PORT_DIGITS = 5
_MAX_PORT = 65_535
_SCHEMES: Final = frozenset({"http", "https"})

Problem = Literal[
    "untrusted_peer", "no_chain", "malformed_chain", "malformed_proto", "malformed_host"
]


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


def _forwarded_pairs(element: str) -> dict[str, str] | None:
    """The parameters of one ``Forwarded`` element (lower-case names), or None if malformed."""
    pairs: dict[str, str] = {}
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            return None
        name = name.strip().lower()
        if name in pairs:  # a parameter twice in one element: ambiguous
            return None
        pairs[name] = value
    return pairs


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':  # noqa: PLR2004  (a pair of quotes)
        return value[1:-1]
    return value


@dataclass(frozen=True, slots=True)
class Resolution:
    """Who sent a request, over which scheme, for which host: the trusted proxies' answer.

    Attributes:
        address: the client's address (a canonical IP); the peer as given when the chain
            names no better one (the peer itself, a proxy whose chain was unusable, a unix
            socket's ``""``).
        trusted: the address is established: the peer itself (not a proxy of ours), or the
            client a trusted proxy's well-formed chain names. False when a trusted proxy sent
            no chain or one that cannot be read (``address`` is then the proxy's own), or the
            peer is no address at all: such a request may be counted (rate limits), never
            admitted by its network.
        scheme: ``"http"`` or ``"https"`` as a trusted proxy reported it; None: the
            connection's own.
        host: the ``Host`` a trusted proxy reported (a valid host name, lower-case, with its
            port if any); None: the request's own.
        proxied: the peer is a trusted proxy, whose headers were read.
        problem: what was wrong, for the security events: ``untrusted_peer`` (forwarding
            headers from a peer that is not a proxy of ours, ignored), ``no_chain``,
            ``malformed_chain``, ``malformed_proto``, ``malformed_host``; None: nothing.
    """

    address: str
    trusted: bool
    scheme: str | None = None
    host: str | None = None
    proxied: bool = False
    problem: Problem | None = None


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

    @property
    def configured(self) -> bool:
        """True when some proxy is trusted (by address or by hops): the headers may count."""
        return bool(self.networks) or self.trusted_hops > 0

    def resolve(
        self, peer: str, *, x_forwarded_for: str | None = None, forwarded: str | None = None
    ) -> str:
        """Return the client address: a canonical IP string, or ``peer`` itself.

        The address of :meth:`resolve_request`, unresolved or not: what a rate limit counts.
        """
        return self.resolve_request(peer, Forwarding(x_forwarded_for, forwarded)).address

    def resolve_request(
        self, peer: str | None, forwarding: Forwarding = NO_FORWARDING
    ) -> Resolution:
        """Resolve one request's client, scheme and host.

        Args:
            peer: the socket peer's host (ASGI ``scope["client"][0]``, WSGI ``REMOTE_ADDR``).
            forwarding: the request's forwarding headers (repeated lines joined by ``,``).

        With proxies configured, a peer without an address (``""``: a unix socket, which only
        local processes such as the proxy can connect to) is a trusted hop. Never raises on
        any header content.
        """
        peer = peer or ""
        peer_address = parse_node(peer) if peer else None
        fallback = peer if peer_address is None else str(peer_address)
        if not self.networks and not self.trusted_hops:
            return Resolution(fallback, trusted=peer_address is not None)
        # No peer address: a unix socket, which only local processes (our proxy) can reach;
        # a trusted hop, as gunicorn treats it. Any other unparsable peer is not trusted.
        trusted_peer = not peer or (peer_address is not None and self.is_trusted(peer_address))
        if self.networks and not trusted_peer:
            return Resolution(
                fallback,
                trusted=peer_address is not None,
                problem="untrusted_peer" if any(forwarding) else None,
            )
        if self.header == "forwarded":
            return self._from_forwarded(fallback, forwarding.forwarded)
        address, problem = self._from_chain(forwarding.x_forwarded_for, None)
        scheme, scheme_problem = _scheme(_last(forwarding.x_forwarded_proto))
        host, host_problem = _host(_last(forwarding.x_forwarded_host))
        return Resolution(
            fallback if address is None else str(address),
            trusted=address is not None,
            scheme=scheme,
            host=host,
            proxied=True,
            problem=problem or scheme_problem or host_problem,
        )

    def _from_forwarded(self, fallback: str, value: str | None) -> Resolution:
        """Resolve from ``Forwarded``: the element naming the client gives its proto and host."""
        elements: list[dict[str, str] | None] = []
        address, problem = self._from_chain(value, elements)
        # The element our edge proxy wrote about the client's connection; when the chain is
        # unusable, the one our peer wrote.
        element = None
        if elements:
            element = elements[-1] if address is not None else elements[0]
        scheme = host = scheme_problem = host_problem = None
        if element is not None:
            scheme, scheme_problem = _scheme(element.get("proto"))
            raw_host = element.get("host")
            host, host_problem = _host(None if raw_host is None else _unquote(raw_host))
        return Resolution(
            fallback if address is None else str(address),
            trusted=address is not None,
            scheme=scheme,
            host=host,
            proxied=True,
            problem=problem or scheme_problem or host_problem,
        )

    def _from_chain(
        self, value: str | None, elements: list[dict[str, str] | None] | None
    ) -> tuple[Address | None, Problem | None]:
        """The client address from a trusted peer's proxy chain, or None and why not.

        ``elements`` (``Forwarded`` only) receives the parsed elements from the right up to
        the one that names the client.
        """
        if not value:
            return None, "no_chain"
        # rsplit bounds the work from the right; an overlong chain leaves commas in the
        # leftmost piece, which then fails to parse: unresolved.
        entries = value.rsplit(",", self.max_hops)
        entries.reverse()
        nodes: list[str | None]
        if elements is None:
            nodes = list(entries)
        else:
            elements.extend(_forwarded_pairs(entry) for entry in entries)
            nodes = [None if pairs is None else pairs.get("for") for pairs in elements]
        index, address = self._pick(nodes)
        if elements is not None and index is not None:
            del elements[index + 1 :]
        if address is None:
            return None, "no_chain" if index is None else "malformed_chain"
        return address, None

    def _pick(self, nodes: list[str | None]) -> tuple[int | None, Address | None]:
        """The index of the entry that names the client (None: too few) and its address."""
        if self.trusted_hops:
            if len(nodes) < self.trusted_hops:
                return None, None
            node = nodes[self.trusted_hops - 1]
            return self.trusted_hops - 1, None if node is None else parse_node(node)
        address = None
        for index, node in enumerate(nodes):
            address = None if node is None else parse_node(node)
            if address is None or not self.is_trusted(address):
                return index, address
        # Every hop is one of our proxies: no untrusted party wrote any of the chain.
        return len(nodes) - 1, address


def _last(value: str | None) -> str | None:
    """The rightmost entry of a list header: the one our nearest proxy wrote."""
    if value is None:
        return None
    return value.rpartition(",")[2]


def _scheme(value: str | None) -> tuple[str | None, Problem | None]:
    if value is None:
        return None, None
    scheme = _unquote(value).lower()
    if scheme in _SCHEMES:
        return scheme, None
    return None, "malformed_proto"


def _host(value: str | None) -> tuple[str | None, Problem | None]:
    if value is None:
        return None, None
    host = value.strip().lower()
    if host_name(host) is None:
        return None, "malformed_host"
    return host, None


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
