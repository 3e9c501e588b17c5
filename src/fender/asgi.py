"""``fender.asgi.wrap(app)``: fender around any ASGI application."""

from fender.web.asgi import wrap

__all__ = ["wrap"]
