"""Security: response headers and the CSP builder, HTTPS, hosts, CORS, cookies, events.

Framework-free and without I/O: the policies are built and validated once at start-up
(a malformed policy is a :class:`~fender.errors.ConfigurationError` naming the directive),
and the middleware only appends precomputed headers per request.
"""

from fender.security._cookies import CookiePolicy, host_cookie
from fender.security._cors import CorsPolicy
from fender.security._csp import CSP, parse_csp
from fender.security._events import EVENT_TYPES, security_event
from fender.security._headers import CSP_NONCE, SecurityHeaders, security_headers
from fender.security._hosts import HostPolicy
from fender.security._hsts import HSTS
from fender.security._probes import probe_of

__all__ = [
    "CSP",
    "CSP_NONCE",
    "EVENT_TYPES",
    "HSTS",
    "CookiePolicy",
    "CorsPolicy",
    "HostPolicy",
    "SecurityHeaders",
    "host_cookie",
    "parse_csp",
    "probe_of",
    "security_event",
    "security_headers",
]
