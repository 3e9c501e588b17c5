"""The tiered rate limiter on real Redis Sentinel and Redis Cluster topologies.

Each topology is started by this file on free loopback ports: a master and one Sentinel
watching it, or a three-master cluster (no replicas) built with ``redis-cli --cluster create``.
A decision is one EVALSHA on the shard of its hash tag; the heartbeat is one EVAL on one key.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

import fender
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._policy import KeyBuilder, parse_policy
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter
from fender.ratelimit._tiers import Tier
from fender.resilience import BreakerState
from fender.settings import load_settings

from servers import RedisServer, wait_for
from topologies import (
    ClusterNode,
    SentinelServer,
    cluster_topology,
    cluster_url,
    owner,
    plain,
    sentinel_topology,
    sentinel_url,
    slot_of,
)

pytestmark = pytest.mark.redis

_tags = itertools.count()
KEYS = KeyBuilder()


@pytest.fixture(scope="module")
def sentinel() -> Iterator[tuple[RedisServer, SentinelServer]]:
    with sentinel_topology() as topology:
        yield topology


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[ClusterNode]]:
    with cluster_topology() as nodes:
        yield nodes


def calls(servers: Sequence[RedisServer]) -> dict[tuple[int, str], int]:
    """Script calls and errors per server port (the commands a script runs are left out)."""
    total: dict[tuple[int, str], int] = {}
    for server in servers:
        with plain(server) as client:
            for name, stats in client.info("commandstats").items():
                if name.startswith("cmdstat_eval"):
                    total[server.port, name] = stats["calls"]
            for name, stats in client.info("errorstats").items():
                total[server.port, name] = stats["count"]
    return total


def grown(before: dict[tuple[int, str], int], after: dict[tuple[int, str], int]) -> dict:
    """What ``after`` counted more than ``before``."""
    return {key: n - before.get(key, 0) for key, n in after.items() if n > before.get(key, 0)}


def stored(server: RedisServer, tag: str) -> list[bytes]:
    """The rate-limit keys of ``tag`` on ``server`` (one per limit: ``key:g<period>``)."""
    with plain(server) as client:
        return sorted(client.scan_iter(match=f"fender:rl:{{{tag}}}:*"))


# -- helpers ---------------------------------------------------------------------------------------


def limiter_config(url: str) -> RateLimitConfig:
    # 500 ms rather than the default 50 ms: a loaded CI host must not push a decision to the
    # fallback, which would make these counts pass without Redis.
    env = {"REDIS_URL": url, "FENDER_RATE_LIMIT_TIMEOUT_MS": "500"}
    return RateLimitConfig.from_settings(load_settings(env, env_file=None))


def items(tag: str, *rates: str) -> list[tuple[str, Any]]:
    """One request's limits, e.g. per IP and per route: every key under the same hash tag."""
    names = ["ip", "route", "user"]
    return [
        (KEYS.build(tag, names[i], "/login"), parse_policy(rate, name=names[i]))
        for i, rate in enumerate(rates)
    ]


def fresh_tag() -> str:
    return f"198.51.100.{next(_tags)}"


def close_sync(limiter: TieredLimiter) -> None:
    limiter.close()


# -- Cluster ---------------------------------------------------------------------------------------


def test_cluster_exact_counts_on_the_shard_of_the_tag(cluster):
    limiter = TieredLimiter(limiter_config(cluster_url(cluster)))
    tag = fresh_tag()
    request = items(tag, "5/minute")
    try:
        allowed = [limiter.decide(request).allowed for _ in range(8)]
        assert allowed == [True] * 5 + [False] * 3
        assert limiter.serving is Tier.REDIS
        assert limiter.core.breaker.state is BreakerState.CLOSED
        # a cluster client (built lazily, on the first decision)
        assert isinstance(limiter._client._connected(), redis.RedisCluster)  # type: ignore[union-attr]
        assert stored(owner(cluster, request[0][0]), tag) == [
            f"fender:rl:{{{tag}}}:ip:/login:g60".encode()
        ]
    finally:
        close_sync(limiter)


def test_cluster_several_limits_are_one_evalsha_on_one_shard(cluster):
    limiter = TieredLimiter(limiter_config(cluster_url(cluster)))
    tag = fresh_tag()
    request = items(tag, "10/minute", "3/minute", "100/hour")
    keys = [key for key, _ in request]
    assert len({slot_of(cluster, key) for key in keys}) == 1
    shard = owner(cluster, keys[0])
    try:
        limiter.decide(request)  # loads the script on that shard if it has not got it
        before = calls(cluster)
        allowed = [limiter.decide(request).allowed for _ in range(4)]
        assert allowed == [True, True, False, False]  # the route's 3/minute, first one included
        assert grown(before, calls(cluster)) == {(shard.port, "cmdstat_evalsha"): 4}
        assert len(stored(shard, tag)) == 3
    finally:
        close_sync(limiter)


def test_cluster_noscript_is_answered_by_one_eval(cluster):
    limiter = TieredLimiter(limiter_config(cluster_url(cluster)))
    request = items(fresh_tag(), "5/minute")
    shard = owner(cluster, request[0][0])
    try:
        assert sum(limiter.decide(request).allowed for _ in range(3)) == 3
        for node in cluster:
            with plain(node) as client:
                client.script_flush()
        before = calls(cluster)
        assert sum(limiter.decide(request).allowed for _ in range(5)) == 2  # counts survive
        assert grown(before, calls(cluster)) == {
            (shard.port, "cmdstat_evalsha"): 5,
            (shard.port, "errorstat_NOSCRIPT"): 1,
            (shard.port, "cmdstat_eval"): 1,
        }
        assert limiter.serving is Tier.REDIS
    finally:
        close_sync(limiter)


def test_cluster_heartbeat_counts_and_leaves(cluster):
    limiter = TieredLimiter(limiter_config(cluster_url(cluster)))
    key = limiter.core.heartbeat_key
    limiter.start()
    try:
        wait_for(lambda: limiter.core.counted == 1, 30, "the first heartbeat")
        with plain(owner(cluster, key)) as client:
            assert client.zcard(key) == 1
    finally:
        close_sync(limiter)
    with plain(owner(cluster, key)) as client:
        assert client.zcard(key) == 0


def test_async_cluster_exact_counts_one_evalsha_and_heartbeat(cluster):
    request = items(fresh_tag(), "5/minute", "20/minute")
    shard = owner(cluster, request[0][0])

    async def scenario() -> None:
        limiter = AsyncTieredLimiter(limiter_config(cluster_url(cluster)))
        assert isinstance(limiter._client, redis.asyncio.RedisCluster)
        try:
            first = await limiter.decide(request)
            before = await asyncio.to_thread(calls, cluster)
            rest = [(await limiter.decide(request)).allowed for _ in range(7)]
            assert [first.allowed, *rest] == [True] * 5 + [False] * 3
            counted = grown(before, await asyncio.to_thread(calls, cluster))
            assert counted == {(shard.port, "cmdstat_evalsha"): 7}
            limiter.core.start()
            await limiter.step()  # the heartbeat, on the shard of its one key
            assert limiter.core.counted == 1
            assert limiter.serving is Tier.REDIS
        finally:
            await limiter.aclose()

    asyncio.run(scenario())


def test_async_cluster_noscript_is_answered_by_one_eval(cluster):
    request = items(fresh_tag(), "5/minute")

    async def scenario() -> int:
        limiter = AsyncTieredLimiter(limiter_config(cluster_url(cluster)))
        try:
            allowed = sum([(await limiter.decide(request)).allowed for _ in range(3)])
            await asyncio.to_thread(flush_scripts, cluster)
            allowed += sum([(await limiter.decide(request)).allowed for _ in range(5)])
            assert limiter.serving is Tier.REDIS
            return allowed
        finally:
            await limiter.aclose()

    assert asyncio.run(scenario()) == 5


def flush_scripts(nodes: Sequence[RedisServer]) -> None:
    for node in nodes:
        with plain(node) as client:
            client.script_flush()


# -- Sentinel --------------------------------------------------------------------------------------


def test_sentinel_exact_counts_on_the_master(sentinel):
    master, watcher = sentinel
    limiter = TieredLimiter(limiter_config(sentinel_url(watcher)))
    tag = fresh_tag()
    # The narrower limit binds; per hour, so that no token comes back during a slow run.
    request = items(tag, "5/minute", "2/hour")
    try:
        before = calls([master])
        assert sum(limiter.decide(request).allowed for _ in range(8)) == 2  # 2/hour binds
        assert limiter.serving is Tier.REDIS
        evalsha = grown(before, calls([master])).get((master.port, "cmdstat_evalsha"))
        assert evalsha == 8
        assert len(stored(master, tag)) == 2
    finally:
        close_sync(limiter)


def test_async_sentinel_exact_counts_on_the_master(sentinel):
    master, watcher = sentinel
    tag = fresh_tag()
    request = items(tag, "5/minute")

    async def scenario() -> list[bool]:
        limiter = AsyncTieredLimiter(limiter_config(sentinel_url(watcher)))
        try:
            return [(await limiter.decide(request)).allowed for _ in range(8)]
        finally:
            await limiter.aclose()

    assert asyncio.run(scenario()) == [True] * 5 + [False] * 3
    assert len(stored(master, tag)) == 1


# -- install() -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> Any:
    """Drive the ASGI lifespan as a server does: startup on enter, shutdown on exit."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, answers.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(answers.get(), 30))["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(answers.get(), 30))["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 30)


def statuses_on_the_cluster(app: Any, runtime: Any, client_ip: str, paths: list[str]) -> list[int]:
    """Start ``app``, wait until its limiter decides on the cluster, GET ``paths`` in order.

    The async cluster client runs COMMAND (a ~30 ms reply without hiredis) on its first call,
    the startup heartbeat, within the 50 ms read timeout; if it misses, the breaker opens and
    the probe brings the limiter back to Redis within ~1 s (waited for generously here). The
    timeout stays the default one: the limiter's breaker is process-wide, and created with the
    first app's settings. Every answer must come from Redis.

    The breaker is waited for as well as ``serving``: shared by every app of the process, it
    may still be open from an earlier test's dead Redis while a new limiter says REDIS.
    """
    limiter = runtime.limiter

    def on_redis() -> bool:
        return limiter.serving is Tier.REDIS and limiter.core.breaker.state is BreakerState.CLOSED

    async def scenario() -> list[int]:
        async with lifespan(app):
            deadline = asyncio.get_running_loop().time() + 30
            while not on_redis():
                assert asyncio.get_running_loop().time() < deadline, "the probe did not reach Redis"
                await asyncio.sleep(0.01)
            transport = httpx.ASGITransport(app=app, client=(client_ip, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                statuses = [(await http.get(path)).status_code for path in paths]
                assert on_redis()
                return statuses

    return asyncio.run(scenario())


def keys_on(cluster: Sequence[ClusterNode], pattern: str) -> list[Any]:
    stored: list[Any] = []
    for node in cluster:
        with plain(node) as client:
            stored += client.keys(pattern)
    return stored


def test_install_with_a_cluster_url_limits_on_the_cluster(cluster):
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    runtime = fender.install(
        app, redis_url=cluster_url(cluster), env="development", rate_limit="3/minute"
    )
    assert isinstance(runtime.limiter, AsyncTieredLimiter)
    paths = [f"/items/{i}" for i in range(5)]
    assert statuses_on_the_cluster(app, runtime, "203.0.113.77", paths) == [200] * 3 + [429] * 2
    # counted in the cluster, not memory; under the service name (FENDER_SERVICE_NAME: app)
    assert keys_on(cluster, "fender:rl:app:{203.0.113.77}*")


def test_stacked_limits_of_different_scopes_stay_on_the_cluster(cluster):
    """ip + global on one route: one script over keys of one slot, not a CROSSSLOT error that
    would open the breaker and move the whole instance to memory."""
    app = FastAPI()

    @app.get("/search")
    @fender.rate_limit("2/minute", key="ip")
    @fender.rate_limit("1000/minute", key="global")
    async def search() -> dict[str, str]:
        return {}

    runtime = fender.install(app, redis_url=cluster_url(cluster), env="development")
    statuses = statuses_on_the_cluster(app, runtime, "203.0.113.78", ["/search"] * 3)
    assert statuses == [200, 200, 429]
    # the global key and the client's key, in the global slot
    assert len(keys_on(cluster, "fender:rl:app:{global}*")) == 2
