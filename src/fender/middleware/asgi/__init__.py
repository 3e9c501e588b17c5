"""Internal: the pure ASGI middleware (lifespan, request path, rate limits, route markers)."""

__all__: list[str] = []
