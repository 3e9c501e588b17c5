"""structlog, imported without rich: fender's JSON logs never draw a traceback with it.

structlog imports its ``dev`` module eagerly, and ``dev`` imports rich (pygments with it) when
rich is installed, for the tracebacks of colored console logs: about 4 MB and 150 modules in
every worker of a service that writes JSON lines. The package imports this module first, so
that structlog's first import does not see rich; :func:`rich_console_tracebacks` gives rich
back to ``structlog.dev`` when colored console logs are configured (development).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

__all__ = ["rich_console_tracebacks"]


def _import_structlog_without_rich() -> None:
    if "structlog" in sys.modules or "rich" in sys.modules:
        return  # loaded already (by the app, or a test): there is nothing left to save
    sys.modules["rich"] = None  # type: ignore[assignment]  # ``import rich`` raises ImportError
    try:
        import structlog  # noqa: F401  (the import this module is for)
    finally:
        if "rich" in sys.modules and sys.modules["rich"] is None:
            del sys.modules["rich"]


def rich_console_tracebacks() -> None:
    """Let structlog's console renderer draw tracebacks with rich, when rich is installed.

    Called once when console logs are configured (start-up, never per request); reloading
    ``structlog.dev`` makes it import rich and pick rich's traceback as its default again.
    """
    import structlog.dev  # loaded already: a lookup

    if getattr(structlog.dev, "rich", None) is None and importlib.util.find_spec("rich"):
        importlib.reload(structlog.dev)


_import_structlog_without_rich()
