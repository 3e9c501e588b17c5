"""``fender.wsgi.wrap(app)``: fender around any WSGI application."""

from fender.frameworks.wsgi import wrap

__all__ = ["wrap"]
