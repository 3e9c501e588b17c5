"""fender.install with REDIS_URL: the resilient store and its health check, over a real Redis."""

from __future__ import annotations

import pytest

import fender

from conftest import serve

pytestmark = pytest.mark.redis


def app_with_redis(url, tmp_path):
    from fastapi import FastAPI

    app = FastAPI()
    runtime = fender.install(
        app,
        env="development",
        redis_url=url,
        runtime_dir=str(tmp_path),
        admin_policy="always",
        # Generous: Redis must answer the first checks on a loaded machine; killed, it refuses
        # at once. (The rate limiter keeps its default timeout: its breaker is process-wide, and
        # created with the first app's settings.)
        network_timeout_sec=1.0,
        redis_probe_interval=0.05,
    )

    @app.get("/visits")
    async def visits() -> dict[str, object]:
        count = await runtime.redis.incr("visits")
        return {"visits": count}

    return app, runtime


def test_redis_down_degrades_to_warn_and_requests_keep_working(redis_server, tmp_path):
    app, _runtime = app_with_redis(redis_server.url, tmp_path)

    async def scenario(client):
        up = (await client.get("/health/detailed")).json()["checks"]["redis"]["status"]
        first = (await client.get("/visits")).status_code
        redis_server.kill()
        answers = [(await client.get("/visits")).status_code for _ in range(10)]
        health = await client.get("/health")
        detailed = (await client.get("/health/detailed")).json()["checks"]["redis"]
        ready = (await client.get("/health/ready")).status_code
        return up, first, answers, health, detailed, ready

    up, first, answers, health, detailed, ready = serve(app, scenario)
    assert up == "pass"
    assert first == 200
    assert answers == [200] * 10
    assert health.status_code == 200
    assert health.json()["status"] == "warn"
    assert detailed["status"] == "warn"
    assert "fallback: memory" in detailed["output"]
    assert ready == 200


def test_without_redis_url_the_memory_tier_serves(tmp_path):
    from fastapi import FastAPI

    app = FastAPI()
    runtime = fender.install(
        app, env="development", runtime_dir=str(tmp_path), admin_policy="always"
    )

    @app.get("/visits")
    async def visits() -> dict[str, object]:
        return {"visits": await runtime.redis.incr("visits")}

    async def scenario(client):
        counts = [(await client.get("/visits")).json()["visits"] for _ in range(3)]
        checks = (await client.get("/health/detailed")).json()["checks"]
        return counts, checks

    counts, checks = serve(app, scenario)
    assert counts == [1, 2, 3]
    assert "redis" not in checks


@pytest.mark.parametrize("enabled", [True, False])
def test_the_rate_limiter_talks_to_redis_only_when_rate_limiting_is_on(
    enabled, redis_server, tmp_path
):
    import asyncio

    import redis
    from fastapi import FastAPI

    from fender.ratelimit._tiers import HEARTBEAT_KEY

    app = FastAPI()
    runtime = fender.install(
        app,
        env="development",
        redis_url=redis_server.url,
        runtime_dir=str(tmp_path),
        rate_limit_enabled=enabled,
        network_timeout_sec=1.0,
    )
    heartbeat = f"{runtime.rate_limit.key_prefix}:{HEARTBEAT_KEY}"
    direct = redis.Redis.from_url(redis_server.url)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async def scenario(client):
        response = await client.get("/ping")
        # The limiter's first heartbeat is due at once: waited for (generously) when it must
        # come; when it must not, a second of silence is the evidence.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (30 if enabled else 1)
        while loop.time() < deadline:
            if direct.exists(heartbeat):
                return response, True
            await asyncio.sleep(0.02)
        return response, False

    response, heartbeat_seen = serve(app, scenario)
    assert response.status_code == 200
    assert ("ratelimit-policy" in response.headers) is enabled
    assert heartbeat_seen is enabled
