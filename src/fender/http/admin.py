"""Who may read fender's protected endpoints: a bearer token, or a client in the admin CIDRs.

A bearer token (compared in constant time) is enough on its own: a browser never attaches
one to a request another site makes. Access granted by network location alone
(FENDER_ADMIN_CIDRS) is what a page a browser inside that network opens could borrow, so it
also needs:

* a ``Host`` that is an IP literal, a loopback name, or in FENDER_ALLOWED_HOSTS: a name an
  attacker's DNS points at the service (DNS rebinding) reads nothing;
* for actions (``POST /health/drain``): a request no cross-site form or ``fetch`` can send
  blind: the ``X-Fender-Admin: 1`` header (or a JSON content type), both of which make a
  browser ask CORS first, and neither ``Sec-Fetch-Site: cross-site`` / ``same-site`` nor an
  ``Origin`` other than the request's own host.

In development (``FENDER_ENV=development``) with FENDER_ADMIN_CIDRS empty, the loopback
addresses (127.0.0.0/8, ::1) stand in for the CIDRs: a developer opens ``/status`` on their own
machine without a token, under every rule above (the client after the trusted proxies, the
``Host``, the signs of an action not sent blind), and never for a request a loopback peer
forwards without being a trusted proxy (a local tunnel relaying the internet). Never in
production; any CIDR set replaces it.

Every refusal is a security event (``bad_admin_token`` for a wrong token, ``admin_denied``
otherwise), and every action allowed is one too (``admin_action``: who asked, and how):
bounded fields, never the token.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
from typing import Final
from urllib.parse import urlsplit

from fender._http import Forwarding
from fender.errors import ConfigurationError
from fender.http.endpoints import Request, Response, error_response, json_response
from fender.observability._logging import current_request
from fender.ratelimit._clientip import ClientIPResolver, Resolution
from fender.security._events import security_event
from fender.security._hosts import HostPolicy, host_name, is_local_host
from fender.settings import Settings

__all__ = ["ADMIN_HEADER", "AdminGuard", "Grant"]

ADMIN_HEADER: Final = "x-fender-admin"
"""The header (value ``1``) that marks an admin action as not sent blind by a browser."""

_CROSS_SITE: Final = frozenset({"cross-site", "same-site"})
_LOOPBACK: Final = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_JSON: Final = "application/json"


class Grant(enum.StrEnum):
    """How a request was let in: the ``via`` of its ``admin_action`` event."""

    TOKEN = "token"  # noqa: S105  (the name of a way in, not a secret)
    NETWORK = "cidr"
    OPEN = "policy"


class AdminGuard:
    """Decides who may read the protected endpoints; built once from the settings."""

    def __init__(self, settings: Settings, client_ips: ClientIPResolver) -> None:
        """Parse the CIDRs and hosts and keep the token; ``client_ips`` knows the proxies."""
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
        self.loopback_open = not networks and settings.env == "development"
        """True when loopback clients stand in for the CIDRs (development, none set)."""
        self._networks = _LOOPBACK if self.loopback_open else tuple(networks)
        self._not_in = (
            "no token, client not on loopback or relayed by an untrusted proxy "
            "(FENDER_ENV=development, FENDER_ADMIN_CIDRS empty)"
            if self.loopback_open
            else "no token, client not in FENDER_ADMIN_CIDRS"
        )
        self._resolver = client_ips
        hosts = HostPolicy.parse(settings.allowed_hosts)
        # No list means any host for the app; for admin access by network it means none but
        # addresses and loopback names (a rebinding name must not pass).
        self._hosts = None if hosts.any else hosts

    # --- decisions ------------------------------------------------------------------------------

    def authorized(self, request: Request, *, strict: bool = False) -> bool:
        """True when ``request`` may see protected data (``strict``: a token or CIDR needed).

        Silent: for answers that only show more to whoever may see it (``/health/quick``).
        """
        return self._decide(request, strict=strict, action=False)[0] is not None

    def grant(
        self, request: Request, *, strict: bool = False, action: str | None = None
    ) -> Grant | None:
        """How ``request`` is let in, or None; refusals and ``action``s are security events.

        ``action`` names a state-changing request (``drain``): it needs the token, or the
        network plus the signs of a request not sent blind by a browser (see the module).
        """
        grant, kind, reason = self._decide(request, strict=strict, action=action is not None)
        if grant is None:
            security_event(kind, reason=reason, **self._who(request))
        elif action is not None:
            security_event("admin_action", action=action, via=str(grant), **self._who(request))
        return grant

    def _decide(  # noqa: PLR0911  (one return per rule, in the order they apply)
        self, request: Request, *, strict: bool, action: bool
    ) -> tuple[Grant | None, str, str]:
        """``(grant, event type, reason)``: the grant, or None and why."""
        if self._policy == "never":
            return None, "admin_denied", "FENDER_ADMIN_POLICY=never"
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._token is not None:
            if hmac.compare_digest(credentials.strip().encode(), self._token):
                return Grant.TOKEN, "", ""
            return None, "bad_admin_token", "wrong bearer token"
        if self._policy == "always" and not strict:
            return Grant.OPEN, "", ""
        if not self._in_networks(request):
            return None, "admin_denied", self._not_in
        host = request.headers.get("host", "")
        if not self._admin_host(host):
            return None, "admin_denied", "Host not an address, loopback or allowed host"
        if action:
            refused = _blind_request(request, host)
            if refused:
                return None, "cross_site_request", refused
        return Grant.NETWORK, "", ""

    def _in_networks(self, request: Request) -> bool:
        """True when the request's client (after the trusted proxies) is in the admin CIDRs.

        The CIDRs: FENDER_ADMIN_CIDRS, or loopback when :attr:`loopback_open`.

        Unresolved (a trusted proxy's chain missing or unreadable): the address is the proxy's
        own, and an unreadable identity is never an admin.
        """
        if not self._networks or not request.client:
            return False
        resolved = self._resolve(request)
        if not resolved.trusted:
            return False
        if self.loopback_open and not resolved.proxied and any(_forwarding(request)):
            # A loopback peer relaying someone else's request (a local proxy or tunnel not in
            # FENDER_TRUSTED_PROXIES): the client is not this machine.
            return False
        try:
            address = ipaddress.ip_address(resolved.address)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def _resolve(self, request: Request) -> Resolution:
        return self._resolver.resolve_request(request.client or "", _forwarding(request))

    def _client_ip(self, request: Request) -> str:
        return self._resolve(request).address

    def _admin_host(self, host: str) -> bool:
        name = host_name(host)
        if name is None:
            return False
        if is_local_host(host) or _is_ip_literal(name):
            return True
        return self._hosts is not None and self._hosts.allows(host)

    def _who(self, request: Request) -> dict[str, object]:
        """Who asked, for an event: never the token."""
        return {
            "client": self._client_ip(request) if request.client else None,
            "method": request.method,
            "path": request.path,
            "host": request.headers.get("host"),
            "user_agent": request.headers.get("user-agent"),
        }

    # --- answers --------------------------------------------------------------------------------

    def deny(self, _request: Request | None = None) -> Response:
        """The answer to an unauthorized request: fender's JSON 404 (nothing here), or 401."""
        context = current_request()
        request_id = context.request_id if context else None
        if self.deny_status == 401:  # noqa: PLR2004
            return json_response(
                401,
                {"error": "unauthorized", "request_id": request_id},
                headers=(("www-authenticate", "Bearer"),),
            )
        return error_response(404, "not_found", request_id)


def _forwarding(request: Request) -> Forwarding:
    """The forwarding headers the admin decision reads (the client's, never its host)."""
    headers = request.headers
    return Forwarding(headers.get("x-forwarded-for"), headers.get("forwarded"))


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _blind_request(request: Request, host: str) -> str:
    """Why ``request`` may be one a browser sent for another site; ``""`` when it cannot be."""
    headers = request.headers
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in _CROSS_SITE:
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get("origin")
    if origin is not None:
        netloc = urlsplit(origin.strip()).netloc if "://" in origin else ""
        if not netloc or host_name(netloc) != host_name(host) or _port(netloc) != _port(host):
            return "Origin is not this host"
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if headers.get(ADMIN_HEADER, "").strip() != "1" and content_type != _JSON:
        return f"no {ADMIN_HEADER}: 1 header nor JSON content type"
    return ""


def _port(host: str) -> str:
    head, _, port = host.rpartition(":")
    return port if head and not port.endswith("]") else ""
