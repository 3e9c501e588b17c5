"""TieredLimiter and AsyncTieredLimiter are twins: the same verbs, meaning the same."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._policy import parse_policy
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter

# Freeing resources is ``close`` in the sync flavour and ``aclose`` in the async one (as for
# httpx's clients and redis-py's); every other name is the same.
SYNC_TO_ASYNC = {"close": "aclose"}


def public(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_the_twins_have_the_same_public_names():
    sync_names = {SYNC_TO_ASYNC.get(name, name) for name in public(TieredLimiter)}
    assert sync_names == set(public(AsyncTieredLimiter))


def test_what_does_io_is_a_coroutine_in_the_async_twin_only():
    sync, async_ = public(TieredLimiter), public(AsyncTieredLimiter)
    for name, member in sync.items():
        twin = async_[SYNC_TO_ASYNC.get(name, name)]
        if not inspect.isfunction(member):
            assert not inspect.isfunction(twin), name  # a property in both
            continue
        assert not inspect.iscoroutinefunction(member), name
        expected = name in {"decide", "step", "start", "stop", "close"}
        assert inspect.iscoroutinefunction(twin) is expected, name
        assert list(inspect.signature(member).parameters) == list(
            inspect.signature(twin).parameters  # type: ignore[arg-type]
        ), name


@pytest.mark.redis
def test_stop_stops_the_background_and_close_frees_the_client_in_both(redis_url):
    config = RateLimitConfig(redis_url=redis_url)
    policy = parse_policy("5/minute")
    sync = TieredLimiter(config)
    sync.start()
    sync.stop()
    assert sync._thread is None
    assert sync.decide([("twins-sync", policy)]).allowed  # stopped, not closed: still serves
    assert sync.core._unsubscribe is not None  # still follows the breaker
    sync.close()
    assert sync.core._unsubscribe is None

    async def run_async() -> None:
        limiter = AsyncTieredLimiter(config)
        await limiter.start()
        await limiter.stop()
        assert limiter._task is None
        assert (await limiter.decide([("twins-async", policy)])).allowed
        assert limiter.core._unsubscribe is not None
        await limiter.aclose()
        assert limiter.core._unsubscribe is None

    asyncio.run(run_async())
