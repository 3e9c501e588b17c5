"""What fender builds once per application: settings, observer, endpoints, lifecycle hooks."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fender.observability import metrics
from fender.observability.logging import configure_logging, get_logger, logging_configured
from fender.settings import Settings, load_settings
from fender.web.endpoints import Endpoints, metrics_endpoint
from fender.web.observe import Observer

__all__ = ["Hook", "Runtime", "build_runtime"]

Hook = Callable[[], Awaitable[None] | None]
_logger = get_logger("fender")


class Runtime:
    """fender's state for one application, built from validated settings at start-up."""

    def __init__(self, settings: Settings, *, logging: bool = True) -> None:
        """Validate ``settings`` for production, configure logging, declare metrics."""
        settings.require_production_ready()
        if logging and not logging_configured():
            configure_logging(settings)
        self.settings = settings
        self.observer = Observer(settings)
        self.endpoints = Endpoints()
        if settings.metrics_enabled:
            self.endpoints.add(settings.metrics_path, metrics_endpoint)
        metrics.set_build_info(settings.release, settings.commit)
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` (sync or async) when the server starts; returns it (a decorator)."""
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at shutdown; hooks run in the reverse order of registration."""
        self._shutdown.append(hook)
        return hook

    async def startup(self) -> None:
        """Run the startup hooks in order; a failing hook fails the start (it raises)."""
        for hook in self._startup:
            await _call(hook)
        _logger.info(
            "fender_started",
            service=self.settings.service_name,
            env=self.settings.env,
            endpoints=list(self.endpoints.paths),
            multiprocess_metrics=metrics.multiprocess_dir() is not None,
        )

    async def shutdown(self) -> None:
        """Run the shutdown hooks in reverse order; a failing hook is logged, the rest run."""
        for hook in reversed(self._shutdown):
            try:
                await _call(hook)
            except Exception:
                _logger.exception("shutdown_hook_failed", hook=_name(hook))
        _logger.info("fender_stopped", service=self.settings.service_name)

    def start_sync(self) -> None:
        """For WSGI, which has no lifespan: run the startup hooks now, shutdown at exit.

        Async hooks run on a private event loop.
        """
        import asyncio
        import atexit

        asyncio.run(self.startup())
        atexit.register(lambda: asyncio.run(self.shutdown()))


async def _call(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


def _name(hook: Any) -> str:
    return str(getattr(hook, "__qualname__", repr(hook)))


def build_runtime(settings: Settings | None = None, **overrides: Any) -> Runtime:
    """A :class:`Runtime` from ``settings`` (default: the environment) with field overrides.

    Raises:
        ConfigurationError: a bad setting or override, or a production rule broken.
    """
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = settings.model_copy(update=overrides)
        settings = load_settings({}, env_file=None, **settings.model_dump())
    return Runtime(settings)
