"""Observability: Prometheus metrics and structured logs with request context."""

# First, before any module here imports structlog: it must load without rich (see _structlog).
from fender.observability import _structlog  # noqa: F401
from fender.observability._logging import configure_logging, current_request, log_performance

__all__ = ["configure_logging", "current_request", "log_performance"]
