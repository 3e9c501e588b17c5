from __future__ import annotations

import asyncio
import itertools
import threading

import pytest
from prometheus_client import REGISTRY

from fender.cache import AsyncCache, Cache, CacheConfig
from fender.errors import ConfigurationError
from fender.redis import (
    AsyncResilientRedis,
    RedisStoreConfig,
    ResilientRedis,
    Source,
    async_redis_client,
    redis_client,
)
from fender.resilience import BreakerConfig, CircuitBreaker

_names = itertools.count()
# No fault is injected here: Redis must answer (Source.REDIS) however loaded the machine is.
TIMEOUT = 1.0


def parts(url, *, asynchronous=False):
    n = next(_names)
    breaker = CircuitBreaker(f"cache-test-{n}", BreakerConfig(failure_threshold=3))
    store_config = RedisStoreConfig(name=f"cache-store-{n}", probe_interval=0.05)
    cache_config = CacheConfig(name=f"cache-{n}", namespace=f"c{n}:")
    if asynchronous:
        client = async_redis_client(url, timeout=TIMEOUT) if url else None
        store = AsyncResilientRedis(client, config=store_config, breaker=breaker)
        return AsyncCache(store, cache_config)
    client = redis_client(url, timeout=TIMEOUT) if url else None
    return Cache(ResilientRedis(client, config=store_config, breaker=breaker), cache_config)


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BACKENDS)
def url(request):
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def count(cache, result):
    labels = {"name": cache.core.config.name, "result": result}
    return REGISTRY.get_sample_value("cache_requests_total", labels) or 0.0


def test_contract_json_roundtrip_ttl_and_metrics(url):
    cache = parts(url)
    assert cache.get("user:1") is None
    assert cache.get("user:1", {"default": True}) == {"default": True}
    expected = Source.MEMORY if url is None else Source.REDIS
    assert cache.set("user:1", {"name": "Ada", "tags": ["x"], "n": 1.5}) is expected
    assert cache.set("user:2", [1, 2], ttl=60) is expected
    assert cache.set("other", None) is expected
    assert cache.get("user:1") == {"name": "Ada", "tags": ["x"], "n": 1.5}
    assert cache.get("other", "default") is None  # a cached null is a hit
    assert count(cache, "hit") == 2
    assert count(cache, "miss") == 2
    cache.store.set(cache.core.key("broken"), b"{not json")
    assert cache.get("broken", "d") == "d"
    assert count(cache, "error") == 1
    assert cache.delete("user:2")
    assert not cache.delete("user:2")
    assert cache.delete_prefix("user:") == 1
    assert cache.clear() == 2  # "other" and "broken"
    assert cache.store.get("unrelated") is None
    cache.store.close()


def test_namespace_isolation(url):
    cache = parts(url)
    cache.store.set("outside", b"1")
    cache.set("inside", 1)
    cache.clear()
    assert cache.store.get("outside") == b"1"
    cache.store.close()


def test_single_flight_threads(url):
    cache = parts(url)
    calls = []
    release = threading.Event()
    barrier = threading.Barrier(50)

    def loader():
        calls.append(1)
        # Hold the flight open until every other caller has joined it or found the value.
        release.wait(5)
        return {"computed": len(calls)}

    results = []

    def worker():
        barrier.wait()
        results.append(cache.get_or_set("hot", loader, ttl=30))

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    # Release once the loader has started: the others are then waiting or will hit the cache.
    while not calls:
        threading.Event().wait(0.001)
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [{"computed": 1}] * 50
    assert cache.get_or_set("hot", loader) == {"computed": 1}
    assert len(calls) == 1
    cache.store.close()


def test_single_flight_failure_reaches_every_waiter_and_caches_nothing(url):
    cache = parts(url)
    started = threading.Event()
    release = threading.Event()

    def loader():
        started.set()
        release.wait(5)
        raise LookupError("db down")

    errors = []

    def worker():
        try:
            cache.get_or_set("k", loader)
        except LookupError as exc:
            errors.append(exc)

    first = threading.Thread(target=worker)
    first.start()
    started.wait(5)
    others = [threading.Thread(target=worker) for _ in range(5)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert len(errors) == 6
    assert cache.get("k", "nothing") == "nothing"
    assert cache.get_or_set("k", lambda: 7) == 7
    cache.store.close()


def test_single_flight_asyncio(url):
    async def scenario():
        cache = parts(url, asynchronous=True)
        calls = 0

        async def loader():
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)  # yield, so that the others join the flight
            return calls

        results = await asyncio.gather(*(cache.get_or_set("hot", loader) for _ in range(50)))
        assert results == [1] * 50
        assert calls == 1
        assert await cache.get_or_set("hot", lambda: 99) == 1
        assert await cache.get_or_set("sync-loader", lambda: [1]) == [1]
        assert await cache.set("k", {"a": 1}) in (Source.REDIS, Source.MEMORY)
        assert await cache.get("k") == {"a": 1}
        assert await cache.delete("k")
        assert await cache.delete_prefix("sync") == 1
        assert await cache.clear() == 1

        async def failing():
            await asyncio.sleep(0)
            raise LookupError("db down")

        outcomes = await asyncio.gather(
            *(cache.get_or_set("bad", failing) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, LookupError) for o in outcomes)
        await cache.store.aclose()

    asyncio.run(scenario())


def test_cache_config_validation():
    with pytest.raises(ConfigurationError, match="namespace"):
        CacheConfig(namespace="")
    with pytest.raises(ConfigurationError, match="default_ttl"):
        CacheConfig(default_ttl=0)
