"""Serving: gunicorn configuration (and, later, container limits, workers, lifecycle)."""

__all__: list[str] = []
