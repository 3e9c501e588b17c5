"""A client over any flavour of app (ASGI or WSGI), in process through httpx transports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, Self

import httpx
import pytest
from prometheus_client import REGISTRY

from fender.settings import load_settings
from fender.testing import LogCapture, capture_logs

from apps import ASGI_APPS, WSGI_APPS


class Client:
    """Sends requests to an ASGI or a WSGI app in process."""

    def __init__(self, app: Any, *, asgi: bool) -> None:
        self.app = app
        self.asgi = asgi

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.asgi:
            return asyncio.run(self._request_async(method, path, **kwargs))
        transport = httpx.WSGITransport(app=self.app)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            return client.request(method, path, **kwargs)

    async def _request_async(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)


FLAVOURS = {
    **{k: (v, True) for k, v in ASGI_APPS.items()},
    **{k: (v, False) for k, v in WSGI_APPS.items()},
}


@pytest.fixture(params=list(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(flavour: str) -> Callable[..., Client]:
    factory, asgi = FLAVOURS[flavour]
    return lambda **options: Client(factory(**options), asgi=asgi)


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    with capture_logs(load_settings({"FENDER_ENV": "development"}, env_file=None)) as capture:
        yield capture


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Lifespan:
    """Drives an ASGI app's lifespan as a server does: startup on enter, shutdown on exit."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        async def receive() -> dict[str, str]:
            return await self.inbox.get()

        async def send(message: dict[str, Any]) -> None:
            await self.answers.put(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, receive, send))
        await self.inbox.put({"type": "lifespan.startup"})
        answer = await asyncio.wait_for(self.answers.get(), 30)
        assert answer["type"] == "lifespan.startup.complete", answer
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(self.answers.get(), 30)
        assert answer["type"] == "lifespan.shutdown.complete", answer
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


def serve(
    app: Any,
    scenario: Callable[[httpx.AsyncClient], Any],
    *,
    client: tuple[str, int] = ("127.0.0.1", 5000),
) -> Any:
    """Start ``app`` (lifespan), run ``scenario(client)`` against it, shut it down."""

    async def main() -> Any:
        async with Lifespan(app):
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                return await scenario(http)

    return asyncio.run(main())
