"""``from fender.flask import Fender``: the Flask extension."""

from fender.frameworks.flask import Fender

__all__ = ["Fender"]
