"""Who may read fender's protected endpoints: a bearer token, or a client in the admin CIDRs."""

from __future__ import annotations

import hmac
import ipaddress

from fender._http import Forwarding
from fender.errors import ConfigurationError
from fender.http.endpoints import Request, Response, json_response
from fender.ratelimit._clientip import ClientIPResolver
from fender.settings import Settings

__all__ = ["AdminGuard"]


class AdminGuard:
    """Decides who may read the protected endpoints; built once from the settings."""

    def __init__(self, settings: Settings, client_ips: ClientIPResolver) -> None:
        """Parse the CIDRs and keep the token; ``client_ips`` knows the trusted proxies."""
        token = settings.admin_token
        self._token = token.get_secret_value().encode() if token else None
        self._policy = settings.admin_policy
        self.deny_status = settings.admin_deny_status
        networks = []
        for part in filter(None, (p.strip() for p in settings.admin_cidrs.split(","))):
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ConfigurationError(
                    "FENDER_ADMIN_CIDRS", settings.admin_cidrs, "comma-separated CIDRs"
                ) from None
        self._networks = tuple(networks)
        self._resolver = client_ips

    def authorized(self, request: Request, *, strict: bool = False) -> bool:
        """True when ``request`` may see protected data (``strict``: a token or CIDR needed)."""
        if self._policy == "never":
            return False
        if self._policy == "always" and not strict:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if (
            self._token is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(credentials.strip().encode(), self._token)
        ):
            return True
        if self._networks and request.client:
            resolved = self._resolver.resolve_request(
                request.client,
                Forwarding(
                    request.headers.get("x-forwarded-for"), request.headers.get("forwarded")
                ),
            )
            # Unresolved (a trusted proxy's chain missing or unreadable): the address is the
            # proxy's own, and an unreadable identity is never an admin.
            try:
                address = ipaddress.ip_address(resolved.address) if resolved.trusted else None
            except ValueError:
                return False
            return address is not None and any(address in net for net in self._networks)
        return False

    def deny(self) -> Response:
        """The answer to an unauthorized request: 404 (nothing here) or 401."""
        if self.deny_status == 401:  # noqa: PLR2004
            return json_response(
                401, {"error": "unauthorized"}, headers=(("www-authenticate", "Bearer"),)
            )
        return json_response(404, {"error": "not_found"})
