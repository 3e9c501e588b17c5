"""Which environment the settings are read from: ``os.environ``, or a mapping given instead."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping

__all__ = ["given_environ", "reading", "running_under_tests", "source_environ"]

# The environment load_settings() was given, when not os.environ (a contextvar: thread-safe).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "fender_settings_environ", default=None
)


@contextlib.contextmanager
def reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, settings are read from ``environ`` (``None``: ``os.environ``)."""
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def given_environ() -> Mapping[str, str] | None:
    """The mapping :func:`reading` was given, or ``None`` for ``os.environ``."""
    return _ENVIRON.get()


def source_environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """``environ``, or ``os.environ`` for ``None``."""
    return os.environ if environ is None else environ


def running_under_tests(environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``environ`` is a pytest run: pytest (8.2 and later) sets ``PYTEST_VERSION``.

    pytest documents the variable for exactly this, and sets it for the whole session, plugins
    and conftest files included (unlike ``PYTEST_CURRENT_TEST``, set only while a test runs).
    """
    return bool(environ.get("PYTEST_VERSION"))
