"""``fender.wsgi.wrap(app)``: fender around any WSGI application."""

from fender.web.wsgi import wrap

__all__ = ["wrap"]
