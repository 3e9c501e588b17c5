"""Services sharing one Redis database share neither rate-limit buckets nor the instance count.

The adversarial pass: two services on one Redis database drew from the same /login bucket and
each counted the other's workers as its own (halving every local share on a Redis outage).
Keys now start with the service name. A real redis-server (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from fender._clock import ManualClock
from fender.http.ratelimit import HttpRateLimit, rate_limit
from fender.ratelimit._config import RateLimitConfig, service_prefix
from fender.ratelimit._tiered import TieredLimiter
from fender.resilience import BreakerRegistry
from fender.settings import load_settings


@pytest.fixture
def limiters(redis_url: str) -> Iterator[dict[str, TieredLimiter]]:
    made: dict[str, TieredLimiter] = {}
    clock = ManualClock()

    def limiter(name: str, service: str) -> TieredLimiter:
        env = {
            "REDIS_URL": redis_url,
            "FENDER_SERVICE_NAME": service,
            "FENDER_RATE_LIMIT_TIMEOUT_MS": "500",  # a loaded host must not fall back
        }
        config = RateLimitConfig.from_settings(load_settings(env, env_file=None))
        made[name] = TieredLimiter(config, clock=clock, registry=BreakerRegistry())
        made[name].core.start()
        return made[name]

    limiter("billing", "billing")
    limiter("billing-2", "billing")
    limiter("search", "search")
    try:
        yield made
    finally:
        for each in made.values():
            each.close()


@rate_limit("2/minute")
def login() -> None:
    """A view limited to 2 a minute per client."""


def login_items(limiter: TieredLimiter) -> list[tuple[str, Any]]:
    """The keys of one /login request from 203.0.113.9, as the HTTP layer builds them."""
    http = HttpRateLimit(limiter.core.config)
    return http.items(http.plan_for("/login", login), "203.0.113.9", "/login")


def test_two_services_do_not_share_a_bucket(limiters, redis_url):
    billing, search = limiters["billing"], limiters["search"]
    assert [billing.decide(login_items(billing)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    # the same client on the other service: a bucket of its own
    assert [search.decide(login_items(search)).allowed for _ in range(2)] == [True, True]
    # and the second worker of billing shares billing's
    assert not limiters["billing-2"].decide(login_items(billing)).allowed
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match="fender:rl:*"))
    finally:
        client.close()
    assert any(k.startswith("fender:rl:billing:{203.0.113.9}") for k in keys)
    assert any(k.startswith("fender:rl:search:{203.0.113.9}") for k in keys)


def test_the_instance_count_is_per_service(limiters):
    for limiter in limiters.values():
        limiter.step()  # the first heartbeat of each
    clock = limiters["billing"].core._clock  # the fixture's one manual clock
    clock.advance(limiters["billing"].core.config.heartbeat_interval)  # type: ignore[attr-defined]
    for limiter in limiters.values():
        limiter.step()
    assert limiters["billing"].core.counted == 2
    assert limiters["billing-2"].core.counted == 2
    assert limiters["search"].core.counted == 1


def test_the_prefix_is_the_service_name_and_cannot_shape_the_key():
    assert service_prefix("app") == "fender:rl:app"
    assert service_prefix("a{b}:c d") == "fender:rl:a%7Bb%7D%3Ac%20d"
