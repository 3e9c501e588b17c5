"""Internal: framework-free HTTP cores. A request description in, a decision or a response out.

No ASGI, no WSGI, no framework here: the endpoint table, the health endpoints, the access
record (metrics and the access event), request ids and the rate-limit plans. The protocol
shells in :mod:`fender.middleware` drive them. Nothing here is public API.
"""

__all__: list[str] = []
