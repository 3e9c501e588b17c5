"""Internal: the WSGI wrappers (request path, body recording, rate limits)."""

__all__: list[str] = []
