"""Observability: Prometheus metrics and structured logs with request context."""

from fender.observability._logging import configure_logging, current_request, log_performance

__all__ = ["configure_logging", "current_request", "log_performance"]
