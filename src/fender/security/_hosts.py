"""Allowed hosts (pure): is the ``Host`` a request names one this service answers to?

Entries as Django's ``ALLOWED_HOSTS``: ``example.com`` (exactly), ``*.example.com`` or
``.example.com`` (the domain and every subdomain), ``*`` (any). Matching ignores case, a
trailing dot and the port. A ``Host`` that is not a host name or an address (spaces, ``@``,
a path, an empty name) never matches: it is malformed, whatever the list says.

Example:
    >>> hosts = HostPolicy.parse("example.com, *.api.example.com")
    >>> hosts.allows("EXAMPLE.com:8443"), hosts.allows("v1.api.example.com")
    (True, True)
    >>> hosts.allows("evil.example.org"), hosts.allows("example.com@evil")
    (False, False)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from fender.errors import ConfigurationError

__all__ = ["HostPolicy", "host_name", "is_local_host"]

# Django's host validation: a name, or a bracketed IPv6 literal, and an optional port.
_HOST: Final = re.compile(r"([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]{1,5})?")
_MAX_HOST: Final = 255 + 1 + 5 + 2
_LOCAL_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


def host_name(host: str) -> str | None:
    """The host name of a ``Host`` value, lower-case, without port or trailing dot; None if bad."""
    host = host.strip().lower()
    if not host or len(host) > _MAX_HOST or not _HOST.fullmatch(host):
        return None
    if host[0] == "[":
        return host[: host.index("]") + 1]
    name = host.rpartition(":")[0] if ":" in host else host
    name = name.removesuffix(".")
    return name or None


def is_local_host(host: str) -> bool:
    """True for ``localhost``, a loopback literal, and names under ``.localhost``."""
    name = host_name(host)
    if name is None:
        return False
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    # A literal only: ``127.attacker.example`` is a name its owner's DNS can point anywhere
    # (DNS rebinding), so a prefix never makes a host local.
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The host names a service answers to; empty ``exact`` and ``suffixes`` with ``any``."""

    exact: frozenset[str]
    suffixes: tuple[str, ...]
    any: bool

    @classmethod
    def parse(cls, value: str, *, field: str = "FENDER_ALLOWED_HOSTS") -> HostPolicy:
        """Build from a comma-separated list; empty means any host. Bad entries raise."""
        exact: set[str] = set()
        suffixes: list[str] = []
        entries = [entry.strip().lower() for entry in value.split(",") if entry.strip()]
        if not entries or "*" in entries:
            return cls(frozenset(), (), any=True)
        for entry in entries:
            wildcard = entry.startswith(("*.", "."))
            name = host_name(entry.removeprefix("*") if wildcard else entry)
            if name is None or (":" in entry and not entry.startswith("[")):
                raise ConfigurationError(
                    field, entry, "host names such as example.com or *.example.com (no port)"
                )
            if wildcard:
                suffixes.append(name.lstrip("."))
            else:
                exact.add(name)
        return cls(frozenset(exact), tuple(suffixes), any=False)

    def allows(self, host: str | None) -> bool:
        """True when ``host`` (a ``Host`` header value, port allowed) is one of ours."""
        if self.any:
            return True
        name = host_name(host) if host else None
        if name is None:
            return False
        if name in self.exact:
            return True
        return any(name == suffix or name.endswith("." + suffix) for suffix in self.suffixes)
