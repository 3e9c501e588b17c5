"""The composition root: fender's runtime for one application, built from settings.

Nothing below imports this package: the adapters (``fender.install``, ``Fender``,
``fender.asgi.wrap``, ``fender.wsgi.wrap``) build a :class:`Runtime` here with the
:class:`Flavour` of their protocol world, and hand its parts to the middleware.
"""

from __future__ import annotations

from typing import Any

from fender.app._flavours import ASGI, WSGI, Flavour, LimiterT, StoreT
from fender.app._runtime import Runtime
from fender.settings import Settings, load_settings

__all__ = ["ASGI", "WSGI", "Flavour", "Runtime", "build_runtime"]


def build_runtime(
    settings: Settings | None = None,
    *,
    flavour: Flavour[StoreT, LimiterT],
    framework: str = "asgi",
    app: object = None,
    app_testing: bool = False,
    **overrides: Any,
) -> Runtime[StoreT, LimiterT]:
    """A :class:`Runtime` from ``settings`` (default: the environment) with field overrides.

    Raises:
        ConfigurationError: a bad setting or override, or a production rule broken.
    """
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        # Only the fields that were set: a default must not look configured (DATABASE_URL).
        given = settings.model_dump(exclude_unset=True)
        if settings.testing_mode():  # read from the environment they came from: keep it
            given.setdefault("testing", True)
        settings = load_settings({}, env_file=None, **{**given, **overrides})
    return Runtime(
        settings,
        flavour=flavour,
        framework=framework,
        app=app,
        app_testing=app_testing,
    )
