"""The peer stacks fender is measured against: what a team assembles from the usual packages.

FastAPI: prometheus-fastapi-instrumentator, slowapi (its pure-ASGI middleware), secure,
asgi-correlation-id and a JSON access line through python-json-logger.
Flask: prometheus-flask-exporter, flask-limiter, flask-talisman, a request id kept in ``g`` (no
Flask package for it is current: the few that exist predate Flask 3) and the same JSON line.

Each builder takes the bare-app factory and a ``limits`` storage URI (``memory://`` or a
``redis://`` URL) and returns ``(name, app)`` pairs: the whole stack first, then, with
``breakdown``, each package alone (``↳`` rows). A stack whose packages are missing is left out
(empty list), so that the bench still runs without the dev extra.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["LIMIT", "MODULES", "available", "fastapi_peers", "flask_peers", "peer_logger"]

# As for fender: a limit no request of the bench reaches (a rejection is cheaper, and wrong).
LIMIT = "1000000/second"
Rows = list[tuple[str, Any]]
# What each stack imports: without one of them, the stack is left out.
MODULES = {
    "fastapi": ("prometheus_fastapi_instrumentator", "slowapi", "secure", "asgi_correlation_id",
                "pythonjsonlogger"),
    "flask": ("prometheus_flask_exporter", "flask_limiter", "flask_talisman", "pythonjsonlogger"),
}  # fmt: skip


def available(framework: str) -> bool:
    """Whether the peer stack of ``framework`` ("fastapi" or "flask") can be built here."""
    return all(importlib.util.find_spec(module) is not None for module in MODULES[framework])


def peer_logger(stream: Any, name: str, correlation: logging.Filter | None) -> logging.Logger:
    """A python-json-logger logger writing one JSON line a record to ``stream``."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter("{asctime}{levelname}{name}{message}{correlation_id}", style="{")
    )
    if correlation is not None:
        handler.addFilter(correlation)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not through fender's handler on the root logger
    return logger


class PeerAccessLog:
    """A JSON access line through python-json-logger, as a peer-stack user would write it."""

    def __init__(self, app: Any, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            self.logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status[0],
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "client": client[0] if client else None,
                },
            )


def fastapi_peers(make: Callable[[], Any], stream: Any, storage: str, breakdown: bool) -> Rows:
    """The FastAPI peer stack on ``storage`` (and, with ``breakdown``, each package alone)."""
    try:
        from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator
        from secure import Secure
        from secure.middleware import SecureASGIMiddleware
        from slowapi import Limiter, _rate_limit_exceeded_handler
        from slowapi.errors import RateLimitExceeded
        from slowapi.middleware import SlowAPIASGIMiddleware
        from slowapi.util import get_remote_address
    except ImportError:
        return []
    logger = peer_logger(stream, "bench.peer.asgi", CorrelationIdFilter())

    def instrumented(app: Any) -> Any:
        # Own registries: two instrumented apps must not declare the same metrics twice.
        Instrumentator(registry=CollectorRegistry()).instrument(app)
        return app

    def limited(app: Any) -> Any:
        limiter = Limiter(get_remote_address, default_limits=[LIMIT], storage_uri=storage)
        app.state.limiter = limiter
        app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)
        app.add_middleware(SlowAPIASGIMiddleware)
        return app

    def secured(app: Any) -> Any:
        app.add_middleware(SecureASGIMiddleware, secure=Secure.with_default_headers())
        return app

    def logged(app: Any) -> Any:
        app.add_middleware(PeerAccessLog, logger=logger)
        return app

    def correlated(app: Any) -> Any:
        app.add_middleware(CorrelationIdMiddleware)
        return app

    # Added innermost first: the request id is outermost, as its docs advise.
    layers = [("prometheus-fastapi-instrumentator", instrumented), ("slowapi", limited),
              ("secure", secured), ("python-json-logger access line", logged),
              ("asgi-correlation-id", correlated)]  # fmt: skip
    return _stack(make, layers, storage, breakdown, "instrumentator + slowapi + secure + "
                  "correlation-id + json-logger")  # fmt: skip


def flask_peers(make: Callable[[], Any], stream: Any, storage: str, breakdown: bool) -> Rows:
    """The Flask peer stack on ``storage`` (and, with ``breakdown``, each package alone)."""
    try:
        from flask import g
        from flask_limiter import Limiter
        from flask_limiter.util import get_remote_address
        from flask_talisman import Talisman
        from prometheus_client import CollectorRegistry
        from prometheus_flask_exporter import PrometheusMetrics
    except ImportError:
        return []

    class RequestIdFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.correlation_id = g.get("request_id")
            return True

    logger = peer_logger(stream, "bench.peer.wsgi", RequestIdFilter())

    def exported(app: Any) -> Any:
        PrometheusMetrics(app, registry=CollectorRegistry())
        return app

    def limited(app: Any) -> Any:
        Limiter(get_remote_address, app=app, default_limits=[LIMIT], storage_uri=storage)
        return app

    def secured(app: Any) -> Any:
        Talisman(app, force_https=False)  # the bench speaks http; defaults otherwise
        return app

    def logged(app: Any) -> Any:
        return _flask_access_line(app, logger)

    # Flask runs before_request hooks in order and after_request hooks in reverse: the request
    # id first in, last out.
    layers = [("request id in g", _flask_request_id), ("prometheus-flask-exporter", exported),
              ("flask-limiter", limited), ("flask-talisman", secured),
              ("python-json-logger access line", logged)]  # fmt: skip
    return _stack(make, layers, storage, breakdown, "exporter + flask-limiter + talisman + "
                  "request id + json-logger")  # fmt: skip


def _stack(
    make: Callable[[], Any],
    layers: list[tuple[str, Callable[[Any], Any]]],
    storage: str,
    breakdown: bool,
    names: str,
) -> Rows:
    where = "in memory" if storage.startswith("memory") else "on Redis"
    app = make()
    for _name, layer in layers:
        app = layer(app)
    rows: Rows = [(f"peer stack ({names}), limits {where}", app)]
    if breakdown:
        rows += [(f"↳ {name} alone", layer(make())) for name, layer in layers]
    return rows


def _flask_access_line(app: Any, logger: logging.Logger) -> Any:
    from flask import g, request

    @app.before_request
    def started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log(response: Any) -> Any:
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - g.get("started", 0.0)) * 1000, 3),
                "client": request.remote_addr,
            },
        )
        return response

    return app


def _flask_request_id(app: Any) -> Any:
    from flask import g, request

    @app.before_request
    def request_id() -> None:
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex

    @app.after_request
    def echo(response: Any) -> Any:
        response.headers["X-Request-ID"] = g.request_id
        return response

    return app
