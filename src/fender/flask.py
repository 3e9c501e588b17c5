"""``from fender.flask import Fender``: the Flask extension."""

from fender.web.flask import Fender

__all__ = ["Fender"]
