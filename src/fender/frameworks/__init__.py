"""Internal: the adapters that put fender on an app.

Public through ``fender.install``, ``fender.flask.Fender``, ``fender.asgi.wrap`` and
``fender.wsgi.wrap``.
"""

from __future__ import annotations

__all__ = ["framework_label"]


def framework_label(name: str) -> str:
    """``"flask"`` -> ``"flask 3.1.0"``: the framework and its installed version, if known."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return name
