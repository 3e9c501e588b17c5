"""ASGI integration: fender's endpoints, the lifespan hooks, and ``wrap()`` for any ASGI app.

Order of the stack, outermost first: lifespan hooks -> :class:`~fender.web.access.FenderMiddleware`
(request id, fender's endpoints, metrics, access event, JSON 500) -> rate limits -> the app.
fender's endpoints are not in the access log unless FENDER_ACCESS_LOG_OWN_ENDPOINTS is on.
"""

from __future__ import annotations

from typing import Any

from fender._types import ASGIApp, Message, Receive, Scope, Send
from fender.observability.logging import get_logger
from fender.settings import Settings
from fender.web.access import FenderMiddleware
from fender.web.runtime import Runtime, build_runtime

__all__ = ["LifespanMiddleware", "stack", "wrap"]

_logger = get_logger("fender.errors")


class LifespanMiddleware:
    """Pure ASGI: run fender's startup and shutdown hooks around the app's lifespan.

    Apps that do not speak the lifespan protocol (they raise on the scope) still get
    fender's hooks: the middleware then answers the server itself.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        """Wrap ``app``."""
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        progress = {"started": False, "app_answered": False}
        failures: list[BaseException] = []

        async def receive_hooked() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.startup()
                except Exception as exc:
                    failures.append(exc)
                    raise
                progress["started"] = True
            return message

        async def send_hooked(message: Message) -> None:
            progress["app_answered"] = True
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.runtime.shutdown()
            await send(message)

        try:
            await self.app(scope, receive_hooked, send_hooked)
        except Exception:
            if progress["app_answered"]:
                raise
            await self._answer_for_the_app(receive, send, failures, started=progress["started"])
            return
        if not progress["app_answered"]:
            # The app returned without speaking lifespan ("if scope type != http: return"):
            # fender's hooks still run.
            await self._speak_lifespan(receive, send, started=progress["started"])

    async def _answer_for_the_app(
        self, receive: Receive, send: Send, failures: list[BaseException], *, started: bool
    ) -> None:
        if failures:
            # fender's startup failed inside the app's receive(): tell the server, or it
            # waits for an answer for ever.
            _logger.error("startup_failed", exc_info=failures[0])
            await send({"type": "lifespan.startup.failed", "message": repr(failures[0])})
            return
        await self._speak_lifespan(receive, send, started=started)

    async def _speak_lifespan(self, receive: Receive, send: Send, *, started: bool) -> None:
        if started:
            await send({"type": "lifespan.startup.complete"})
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.startup()
                except Exception as exc:
                    _logger.exception("startup_failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def stack(app: ASGIApp, runtime: Runtime) -> ASGIApp:
    """The request path around ``app``, without the lifespan layer."""
    from fender.ratelimit.limiter import AsyncTieredLimiter
    from fender.web.appcheck import is_django
    from fender.web.ratelimit import RateLimitMiddleware

    inner: ASGIApp = app
    if isinstance(runtime.limiter, AsyncTieredLimiter) and runtime.rate_limit.enabled:
        inner = RateLimitMiddleware(inner, runtime.limiter)
    # Django routes inside its handler: fender asks its URLconf for the template.
    return FenderMiddleware(inner, runtime, route_of=_django_route if is_django(app) else None)


def _django_route(scope: Scope) -> str | None:
    from fender.web.appcheck import django_route

    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return django_route(path[len(root) :] if root and path.startswith(root) else path)


def wrap(app: ASGIApp, *, settings: Settings | None = None, **options: Any) -> ASGIApp:
    """Wrap any ASGI app in fender: request ids, JSON logs, metrics, fender's endpoints.

    ``options`` are settings fields (``slow_request_ms=250``...) overriding the environment.

    Example:
        >>> async def app(scope, receive, send): ...
        >>> app = wrap(app, env="development")

    The returned app's ``runtime`` attribute is fender's :class:`Runtime` for it.
    """
    from fender.web.appcheck import is_django

    runtime = build_runtime(settings, framework="asgi", app=app, **options)
    if is_django(app):  # not merely Django configured in this process
        runtime.yield_to_django()
    return LifespanMiddleware(stack(app, runtime), runtime)
