"""Security: response headers and the CSP builder, HTTPS, hosts, CORS, cookies, events.

Framework-free and without I/O: the policies are built and validated once at start-up
(a malformed policy is a :class:`~fender.errors.ConfigurationError` naming the directive),
and the middleware only appends precomputed headers per request.
"""

from fender.security._cors import CorsPolicy
from fender.security._events import EVENT_TYPES, security_event
from fender.security._hosts import HostPolicy
from fender.security._probes import probe_of

__all__ = ["EVENT_TYPES", "CorsPolicy", "HostPolicy", "probe_of", "security_event"]
