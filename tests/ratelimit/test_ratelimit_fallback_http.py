"""``@rate_limit(..., fallback="closed")``: while Redis does not answer, that route rejects
with a clear 429 and the others keep limiting in memory."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from fastapi import FastAPI

import fender

from servers import free_port


def test_a_route_may_close_while_the_store_is_down():
    app = FastAPI()

    @app.post("/login")
    @fender.rate_limit("5/minute", fallback="closed")
    async def login() -> dict[str, str]:
        return {}

    @app.get("/items")
    async def items() -> dict[str, str]:
        return {}

    fender.install(
        app,
        env="development",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nobody listens
        rate_limit="100/minute",
    )

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/login"), await client.get("/items")

    login_response, items_response = asyncio.run(scenario())
    assert login_response.status_code == 429
    body = orjson.loads(login_response.content)
    assert body["error"] == "rate_limit_unavailable"
    assert int(login_response.headers["retry-after"]) >= 1
    assert items_response.status_code == 200  # limited in memory meanwhile
    assert "ratelimit" in items_response.headers
