"""``fender.asgi.wrap(app)``: fender around any ASGI application."""

from fender.frameworks.asgi import wrap

__all__ = ["wrap"]
