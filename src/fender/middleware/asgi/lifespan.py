"""Pure ASGI: fender's startup and shutdown hooks around the app's lifespan."""

from __future__ import annotations

from fender._types import ASGIApp, Message, Receive, Scope, Send
from fender.http.site import Site
from fender.observability._logging import get_logger

__all__ = ["LifespanMiddleware"]

_logger = get_logger("fender.errors")


class LifespanMiddleware:
    """Pure ASGI: run fender's startup and shutdown hooks around the app's lifespan.

    Apps that do not speak the lifespan protocol (they raise on the scope) still get
    fender's hooks: the middleware then answers the server itself.
    """

    def __init__(self, app: ASGIApp, runtime: Site) -> None:
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
