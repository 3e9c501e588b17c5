"""gunicorn worker class for ASGI apps: ``-k fender.runtime.uvicorn_worker.UvicornWorker``.

The stock ``uvicorn_worker.UvicornWorker`` does not pass gunicorn's ``graceful_timeout`` to
uvicorn: uvicorn then waits for slow requests without a bound, gunicorn SIGKILLs the worker
when its own timeout runs out, and the app's lifespan shutdown (closing pools, flushing) never
runs. This worker gives uvicorn a graceful budget a little shorter than gunicorn's, so uvicorn
cancels what is still running, logs it, and runs the lifespan shutdown in time. It also sends
uvicorn's log records through fender's renderer (the stock worker pins them to gunicorn's
handlers), and turns uvicorn's proxy-header handling off: fender's edge is the one reader
of ``X-Forwarded-*`` (uvicorn would make any string of ``X-Forwarded-For`` the client address,
before fender could judge it).
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Final

from uvicorn_worker import UvicornWorker as _StockWorker

__all__ = ["SHUTDOWN_MARGIN", "UvicornWorker", "graceful_budget"]

SHUTDOWN_MARGIN: Final = 0.2
"""Share of gunicorn's graceful_timeout kept for the lifespan shutdown (at least 1 s)."""


def graceful_budget(graceful_timeout: float) -> int:
    """Seconds uvicorn waits for in-flight requests, leaving time for the lifespan shutdown."""
    margin = max(1.0, graceful_timeout * SHUTDOWN_MARGIN)
    return max(1, math.floor(graceful_timeout - margin))


class UvicornWorker(_StockWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, with a bounded graceful shutdown and fender's logging."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        "http": "auto",
        "access_log": False,
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build the stock worker, then fix its shutdown budget and its loggers."""
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = graceful_budget(self.cfg.graceful_timeout)
        for name in ("uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers = []
            logger.propagate = True
