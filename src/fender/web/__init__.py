"""The request path: pure ASGI classes and a WSGI wrapper, and fender's own endpoints."""

__all__: list[str] = []
