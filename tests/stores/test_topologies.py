"""The resilient store on real Redis Sentinel and Redis Cluster topologies.

Each topology is started by this file on free loopback ports: a master and one Sentinel
watching it, or a three-master cluster (no replicas) built with ``redis-cli --cluster create``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence

import pytest

from fender.cache import AsyncCache, Cache, CacheConfig
from fender.ratelimit._policy import parse_policy
from fender.redis import (
    RedisStoreConfig,
    Source,
    async_resilient_redis,
    resilient_redis,
)
from fender.resilience import BreakerConfig, BreakerState, CircuitBreaker
from fender.settings import load_settings

from servers import RedisServer, free_port, wait_for
from topologies import (
    ClusterNode,
    SentinelServer,
    cluster_topology,
    cluster_url,
    failover_topology,
    owner,
    plain,
    sentinel_topology,
    sentinel_url,
)

pytestmark = pytest.mark.redis

THRESHOLD = 3
_names = itertools.count()


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentinel() -> Iterator[tuple[RedisServer, SentinelServer]]:
    with sentinel_topology() as topology:
        yield topology


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[ClusterNode]]:
    with cluster_topology() as nodes:
        yield nodes


def breaker(recovery_timeout: float) -> CircuitBreaker:
    return CircuitBreaker(
        f"topology-test-{next(_names)}",
        BreakerConfig(
            failure_threshold=THRESHOLD,
            failure_rate_threshold=None,
            slow_call_rate_threshold=None,
            recovery_timeout=recovery_timeout,
            permitted_calls_in_half_open=1,
            success_threshold=1,
        ),
    )


def store_kwargs(url: str, *, recovery_timeout: float = 30.0) -> dict[str, object]:
    """The default recovery keeps an opened breaker open for the test (no recovery checked)."""
    return {
        "settings": load_settings({"REDIS_URL": url, "NETWORK_TIMEOUT_SEC": "1"}, env_file=None),
        "config": RedisStoreConfig(name=f"topology-store-{next(_names)}", probe_interval=0.05),
        "breaker": breaker(recovery_timeout),
    }


def keys_on_every_node(nodes: Sequence[ClusterNode], prefix: str) -> list[str]:
    """One key per node: a set/get round trip that touches every shard."""
    found: dict[int, str] = {}
    for i in itertools.count():
        key = f"{prefix}:{i}"
        found.setdefault(owner(nodes, key).port, key)
        if len(found) == len(nodes):
            return list(found.values())
    raise AssertionError  # unreachable: count() never ends


# -- Sentinel --------------------------------------------------------------------------------------


def test_sentinel_store_reaches_the_master(sentinel):
    master, watcher = sentinel
    store = resilient_redis(**store_kwargs(sentinel_url(watcher)))  # type: ignore[arg-type]
    try:
        assert store.set("sentinel:sync", b"one", ttl=60) is Source.REDIS
        assert store.get_result("sentinel:sync").source is Source.REDIS
        assert store.get("sentinel:sync") == b"one"
        assert store.incr("sentinel:count", 2) == 2
        with plain(master) as client:
            assert client.get("sentinel:sync") == b"one"
            assert client.get("sentinel:count") == b"2"
            assert 0 < client.pttl("sentinel:sync") <= 60_000
    finally:
        store.close()


def test_async_sentinel_store_reaches_the_master(sentinel):
    master, watcher = sentinel

    async def scenario() -> None:
        store = async_resilient_redis(**store_kwargs(sentinel_url(watcher)))  # type: ignore[arg-type]
        try:
            assert await store.set("sentinel:async", "two") is Source.REDIS
            assert (await store.get_result("sentinel:async")).source is Source.REDIS
            assert await store.get("sentinel:async") == b"two"
        finally:
            await store.aclose()

    asyncio.run(scenario())
    with plain(master) as client:
        assert client.get("sentinel:async") == b"two"


def test_sentinel_master_killed_the_store_degrades_to_memory():
    with sentinel_topology() as (master, watcher):
        store = resilient_redis(**store_kwargs(sentinel_url(watcher)))  # type: ignore[arg-type]
        try:
            assert store.set("kept", b"before") is Source.REDIS
            master.kill()
            for i in range(THRESHOLD + 2):  # no exception, whatever the breaker's state
                assert store.set(f"during:{i}", b"x") is Source.MEMORY
            assert store.breaker.state is BreakerState.OPEN
            assert store.degraded
            result = store.get_result("kept")
            assert (result.value, result.source) == (b"before", Source.MEMORY)
            assert store.get("during:0") == b"x"
            assert store.get("never-set", b"default") == b"default"
        finally:
            store.close()


def test_after_a_sentinel_failover_the_store_writes_to_the_new_master():
    with failover_topology() as (_master, replica, watcher):
        # Failures during a slow switch may open the breaker: it must probe again soon, not in
        # 30 s, for the write to the new master to be waited for.
        kwargs = store_kwargs(sentinel_url(watcher), recovery_timeout=0.5)
        store = resilient_redis(**kwargs)  # type: ignore[arg-type]
        try:
            assert store.set("failover:before", b"1") is Source.REDIS
            with plain(watcher) as client:
                client.execute_command("SENTINEL FAILOVER mymaster")

            def promoted() -> bool:
                with plain(watcher) as client:
                    _, port = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME mymaster")
                return int(port) == replica.port

            wait_for(promoted, 60, "the replica's promotion")
            # During the switch writes may go to memory, or to the old master until the Sentinel
            # demotes it (Redis replicates asynchronously: such writes are lost, as with any
            # client). No exception either way; then the store writes to the new master.
            attempts = itertools.count()

            def on_the_new_master() -> bool:
                value = str(next(attempts)).encode()
                if store.set("failover:after", value) is not Source.REDIS:
                    return False
                with plain(replica) as client:
                    return client.get("failover:after") == value

            wait_for(on_the_new_master, 60, "a write reaching the new master")
            with plain(replica) as client:
                assert client.get("failover:before") == b"1"  # replicated before the switch
            assert store.get_result("failover:before").source is Source.REDIS
        finally:
            store.close()


def test_async_sentinel_master_killed_the_store_degrades_to_memory():
    with sentinel_topology() as (master, watcher):

        async def scenario() -> None:
            store = async_resilient_redis(**store_kwargs(sentinel_url(watcher)))  # type: ignore[arg-type]
            try:
                assert await store.set("kept", b"before") is Source.REDIS
                await asyncio.to_thread(master.kill)
                for i in range(THRESHOLD + 2):
                    assert await store.set(f"during:{i}", b"x") is Source.MEMORY
                assert store.breaker.state is BreakerState.OPEN
                result = await store.get_result("kept")
                assert (result.value, result.source) == (b"before", Source.MEMORY)
            finally:
                await store.aclose()

        asyncio.run(scenario())


# -- Cluster ---------------------------------------------------------------------------------------


def test_cluster_store_keys_on_every_shard(cluster):
    keys = keys_on_every_node(cluster, "cluster:sync")
    store = resilient_redis(**store_kwargs(cluster_url(cluster)))  # type: ignore[arg-type]
    try:
        for key in keys:
            assert store.set(key, key.encode(), ttl=60) is Source.REDIS
        for key in keys:
            result = store.get_result(key)
            assert (result.value, result.source) == (key.encode(), Source.REDIS)
        for key in keys:  # each on its own shard, as the cluster says
            with plain(owner(cluster, key)) as client:
                assert client.get(key) == key.encode()
        counters = keys_on_every_node(cluster, "cluster:counter")
        assert [store.incr(key, 3, ttl=60) for key in counters] == [3, 3, 3]
        assert store.delete(*keys[:2]) == 2  # keys of two slots in one call
        assert store.delete_prefix("cluster:") == 4  # SCAN on every shard
        assert store.get(keys[2]) is None
        assert not store.degraded
    finally:
        store.close()


def test_async_cluster_store_keys_on_every_shard(cluster):
    keys = keys_on_every_node(cluster, "cluster:async")

    async def scenario() -> None:
        store = async_resilient_redis(**store_kwargs(cluster_url(cluster)))  # type: ignore[arg-type]
        try:
            for key in keys:
                assert await store.set(key, key.encode()) is Source.REDIS
            for key in keys:
                result = await store.get_result(key)
                assert (result.value, result.source) == (key.encode(), Source.REDIS)
            assert await store.incr(keys[0] + ":n", 5) == 5
            assert await store.delete(*keys) == 3
            assert await store.delete_prefix("cluster:async") == 1
            assert not store.degraded
        finally:
            await store.aclose()

    asyncio.run(scenario())
    for key in keys:
        with plain(owner(cluster, key)) as client:
            assert client.exists(key) == 0


def test_cluster_cache_get_or_set(cluster):
    store = resilient_redis(**store_kwargs(cluster_url(cluster)))  # type: ignore[arg-type]
    cache = Cache(store, CacheConfig(name=f"topology-cache-{next(_names)}", namespace="c:"))
    calls: list[str] = []

    def loader(name: str) -> dict[str, str]:
        calls.append(name)
        return {"name": name}

    try:
        names = [f"user-{i}" for i in range(6)]  # spread over the shards
        for name in names:
            assert cache.get_or_set(name, lambda n=name: loader(n), ttl=60) == {"name": name}
        for name in names:  # now from Redis: the loader is not called again
            assert cache.get_or_set(name, lambda: loader("again"), ttl=60) == {"name": name}
        assert calls == names
        with plain(owner(cluster, "c:user-0")) as client:
            assert client.get("c:user-0") == b'{"name":"user-0"}'
        assert cache.clear() == len(names)
    finally:
        store.close()


def test_async_cluster_cache_get_or_set(cluster):
    async def scenario() -> None:
        store = async_resilient_redis(**store_kwargs(cluster_url(cluster)))  # type: ignore[arg-type]
        cache = AsyncCache(
            store, CacheConfig(name=f"topology-cache-{next(_names)}", namespace="a:")
        )
        loads = 0

        async def loader() -> list[int]:
            nonlocal loads
            loads += 1
            await asyncio.sleep(0.01)
            return [1, 2]

        try:
            # Single flight: ten concurrent callers, one load.
            values = await asyncio.gather(*(cache.get_or_set("k", loader, 60) for _ in range(10)))
            assert values == [[1, 2]] * 10
            assert loads == 1
            assert await cache.get("k") == [1, 2]
        finally:
            await store.aclose()

    asyncio.run(scenario())


# -- the connect handshake -------------------------------------------------------------------------


def counts(servers: Sequence[RedisServer]) -> dict[str, int]:
    """Calls per command and count per error, summed over ``servers`` (INFO itself aside)."""
    total: dict[str, int] = {}
    for server in servers:
        with plain(server) as client:
            for name, stats in client.info("commandstats").items():
                total[name] = total.get(name, 0) + stats["calls"]
            for name, stats in client.info("errorstats").items():
                total[name] = total.get(name, 0) + stats["count"]
    total.pop("cmdstat_info", None)
    return total


def test_a_new_connection_sends_no_client_setinfo_nor_maintenance_handshake(sentinel, cluster):
    # Redis 7.0 rejects CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS (errorstat_ERR); 7.2+
    # counts the former as cmdstat_client|setinfo. Neither may appear.
    master, watcher = sentinel
    for servers, url in (
        ([master, watcher], sentinel_url(watcher)),
        (cluster, cluster_url(cluster)),
    ):
        before = counts(servers)
        store = resilient_redis(**store_kwargs(url))  # type: ignore[arg-type]
        try:
            assert store.set("handshake", b"1") is Source.REDIS
        finally:
            store.close()
        after = counts(servers)
        seen = {name for name, count in after.items() if count > before.get(name, 0)}
        assert "cmdstat_set" in seen
        assert not {name for name in seen if "setinfo" in name or name.startswith("errorstat")}


@pytest.mark.redis
def test_a_cluster_down_at_boot_degrades_instead_of_crashing():
    from fender.ratelimit._config import RateLimitConfig
    from fender.ratelimit._tiered import TieredLimiter

    dead = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    settings = load_settings({"REDIS_URL": dead, "NETWORK_TIMEOUT_SEC": "0.2"}, env_file=None)
    store = resilient_redis(settings)  # builds: the sync cluster client connects lazily
    try:
        store.set("k", b"v")
        assert store.get("k") == b"v"  # served by the memory tier
    finally:
        store.close()
    limiter = TieredLimiter(RateLimitConfig.from_settings(settings))
    try:
        assert limiter.decide([("client", parse_policy("2/minute"))]).allowed
    finally:
        limiter.close()
