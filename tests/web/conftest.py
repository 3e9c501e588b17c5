"""A client over any flavour of app (ASGI or WSGI), in process through httpx transports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from apps import ASGI_APPS, WSGI_APPS
from prometheus_client import REGISTRY

from fender.settings import load_settings
from fender.testing import LogCapture, capture_logs


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
