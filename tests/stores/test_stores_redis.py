from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
import redis
from prometheus_client import REGISTRY

from fender._status import Status
from fender.errors import ConfigurationError
from fender.redis import (
    AsyncResilientRedis,
    RedisStoreConfig,
    ResilientRedis,
    Source,
    async_redis_client,
    parse_redis_url,
    redis_client,
    resilient_redis,
    store_health_check,
)
from fender.resilience import BreakerConfig, BreakerState, CircuitBreaker
from fender.settings import load_settings
from fender.stores import MemoryTier, TierConfig

from servers import free_port, redis_io, wait_for

THRESHOLD = 3
# Socket timeout: a hung Redis costs this much per call until the breaker opens. Not shorter: on
# a loaded machine a healthy Redis must not time out where a test expects it to answer.
TIMEOUT = 0.25
_names = itertools.count()


def breaker(threshold=THRESHOLD):
    return CircuitBreaker(
        f"redis-test-{next(_names)}",
        BreakerConfig(
            failure_threshold=threshold,
            failure_rate_threshold=None,
            slow_call_rate_threshold=None,
            recovery_timeout=0.05,
            recovery_jitter=0.0,
            permitted_calls_in_half_open=1,
            success_threshold=1,
        ),
    )


def config(**kwargs):
    kwargs.setdefault("name", f"store-test-{next(_names)}")
    kwargs.setdefault("probe_interval", 0.05)
    return RedisStoreConfig(**kwargs)


def sync_store(url, **kwargs):
    client = redis_client(url, timeout=TIMEOUT) if url else None
    return ResilientRedis(client, config=config(**kwargs), breaker=breaker())


def async_store(url, **kwargs):
    client = async_redis_client(url, timeout=TIMEOUT) if url else None
    return AsyncResilientRedis(client, config=config(**kwargs), breaker=breaker())


def sample(name, labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- a contract every backend passes ---------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
def store(request):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    store = sync_store(url)
    yield store
    store.close()


def test_contract_set_get_default(store):
    assert store.get("missing") is None
    assert store.get("missing", b"d") == b"d"
    result = store.get_result("missing", 7)
    assert (result.value, result.source) == (7, Source.DEFAULT)
    expected = Source.MEMORY if store.client is None else Source.REDIS
    assert store.set("k", "välue") is expected
    assert store.get("k") == "välue".encode()
    result = store.get_result("k")
    assert result.source is expected
    assert not result.stale
    assert not result.degraded
    assert store.set("t", b"v", ttl=30) is expected
    assert store.get("t") == b"v"


def test_contract_delete_and_prefix(store):
    for key in ("a*[x]:1", "a*[x]:2", "a*[y]:1", "ab"):
        store.set(key, b"v")
    assert store.delete("ab", "nope") == 1
    assert store.delete_prefix("a*[x]:") == 2
    assert store.get("a*[y]:1") == b"v"
    assert store.get("a*[x]:1") is None
    with pytest.raises(ValueError, match="empty prefix"):
        store.delete_prefix("")


def test_contract_incr(store):
    assert store.incr("n") == 1
    assert store.incr("n", 4, ttl=60) == 5
    assert store.get("n") == b"5"
    assert store.ping() is (store.client is not None)
    assert store.health().status is Status.PASS


@pytest.mark.redis
def test_incr_sets_the_ttl_once_and_reads_fill_the_tier_with_it(redis_url):
    with sync_store(redis_url) as store:
        store.incr("win", ttl=60)
        raw = redis.Redis.from_url(redis_url)
        assert 0 < raw.pttl("win") <= 60_000
        raw.set("other", b"x", px=30_000)
        assert store.get("other") == b"x"
        _, remaining = store.tier.peek("other")
        assert 0 < remaining <= 30
        raw.delete("other")
        assert store.get("other") is None
        assert "other" not in store.tier
        raw.close()


@pytest.mark.redis
def test_a_caller_error_propagates_and_does_not_trip(redis_url):
    with sync_store(redis_url) as store:
        raw = redis.Redis.from_url(redis_url)
        raw.rpush("list", b"x")
        raw.close()
        for _ in range(THRESHOLD + 1):
            with pytest.raises(redis.ResponseError):
                store.get("list")
        assert store.breaker.state is BreakerState.CLOSED


# -- faults: killed and hung Redis ----------------------------------------------------------------


def run_calls(store, count=200):
    """Mixed reads and writes from this thread; returns (was_open, reached_redis) per call."""
    records = []
    for i in range(count):
        was_open = store.breaker.state is not BreakerState.CLOSED
        with redis_io() as io:
            if i % 2:
                result = store.get_result(f"k{i % 20}")
                assert result.source in (Source.MEMORY, Source.REDIS)
                assert result.value == f"v{i % 20}".encode()
            else:
                store.set(f"w{i}", b"x")
        records.append((was_open, io["send"] + io["connect"] > 0))
    return records


def assert_no_redis_after_open(records):
    """At most THRESHOLD calls reach Redis; once the breaker opened, none does.

    Counted, not timed: "served from memory without a network call" is what makes a call fast,
    and a loaded machine can make any call slow.
    """
    before = [reached for was_open, reached in records if not was_open]
    after = [reached for was_open, reached in records if was_open]
    assert len(before) <= THRESHOLD, f"{len(before)} calls reached Redis before the breaker opened"
    assert before, "the breaker was open before the first call"
    assert all(before)  # the calls made while it was closed did reach Redis (the count works)
    assert len(after) >= len(records) - THRESHOLD
    assert not any(after), f"{sum(after)} calls reached Redis while the breaker was open"


def break_(server, fault):
    if fault == "kill":
        server.kill()
    else:
        server.pause()


def mend(server, fault):
    if fault == "kill":
        server.restart()
    else:
        server.resume()


@pytest.mark.redis
@pytest.mark.parametrize("policy", ["invalidate", "write_back"])
@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_outage_serves_from_memory_and_recovers_by_itself(redis_server, fault, policy, caplog):
    caplog.set_level(logging.INFO, logger="fender.stores")
    store = sync_store(redis_server.url, on_recovery=policy)
    name = store.core.config.name
    hits = sample("redis_fallback_reads_total", {"name": name, "result": "hit"})
    for i in range(20):
        assert store.set(f"k{i}", f"v{i}") is Source.REDIS
    assert store.set("during", b"before") is Source.REDIS

    break_(redis_server, fault)
    assert_no_redis_after_open(run_calls(store))
    assert store.degraded
    assert store.set("during", b"outage") is Source.MEMORY
    assert store.get_result("during").source is Source.MEMORY
    assert store.health().output == "fallback: memory"
    assert sample("redis_fallback_reads_total", {"name": name, "result": "hit"}) - hits >= 90
    assert sample("redis_backend", {"name": name, "backend": "memory"}) == 1

    mend(redis_server, fault)
    wait_for(
        lambda: store.breaker.state is BreakerState.CLOSED and store.core.pending == 0,
        30.0,
        "the background probe closing the breaker",
    )
    assert not store.degraded
    raw = redis_server.client()
    if policy == "invalidate":
        assert raw.get("during") is None
        assert store.get("during") is None
    else:
        assert raw.get("during") == b"outage"
        assert store.get("during") == b"outage"
    assert "during" not in store.tier or policy == "write_back"
    assert store.get_result("k1").source in (Source.REDIS, Source.DEFAULT)
    assert sample("redis_backend", {"name": name, "backend": "redis"}) == 1
    events = [r.getMessage() for r in caplog.records if r.name == "fender.stores"]
    assert events.count("redis fallback engaged") == 1
    assert events.count("redis recovered") == 1
    raw.close()
    store.close()


@pytest.mark.redis
def test_stale_copies_are_served_marked_and_deletes_are_journaled(redis_server):
    tier = MemoryTier(TierConfig(max_stale=60.0))
    client = redis_client(redis_server.url, timeout=TIMEOUT)
    store = ResilientRedis(client, config=config(), breaker=breaker(), tier=tier)
    store.set("short", b"v", ttl=0.001)
    store.set("gone", b"v")
    raw = redis_server.client()
    raw.set("counter", b"40")
    raw.set("shadow", b"x")
    wait_for(lambda: "short" not in tier, 10.0, "the tier copy expiring")
    redis_server.pause()
    for _ in range(THRESHOLD):
        store.get("nothing")
    assert store.degraded
    result = store.get_result("short", b"default")
    assert (result.value, result.source, result.stale, result.degraded) == (
        b"v", Source.MEMORY, True, True,
    )  # fmt: skip
    assert result.stale_age > 0
    assert store.get_result("never-seen", b"d").source is Source.DEFAULT
    assert store.delete("gone") == 1
    assert store.incr("counter", 2) == 2
    assert store.delete_prefix("sh") == 1
    assert store.core.pending == 3
    redis_server.resume()
    wait_for(lambda: store.core.pending == 0 and not store.degraded, 30.0, "recovery")
    assert raw.get("counter") is None
    assert raw.get("shadow") is None
    assert raw.get("gone") is None
    raw.close()
    store.close()


@pytest.mark.redis
def test_without_fallback_reads_default_and_health_fails(redis_server):
    store = sync_store(redis_server.url, fallback=False)
    store.set("k", b"v")
    check = store_health_check(store)
    assert check.func().status is Status.PASS
    redis_server.kill()
    for _ in range(THRESHOLD):
        assert store.get("k", b"d") == b"d"
    assert store.set("k", b"new") is Source.DROPPED
    assert store.get_result("k").source is Source.DEFAULT
    result = check.func()
    assert result.status is Status.FAIL
    assert "no fallback" in result.output
    store.close()


@pytest.mark.redis
def test_health_check_pass_warn_and_memory_only(redis_server):
    store = sync_store(redis_server.url)
    check = store_health_check(store, name="cache-redis")
    assert check.name == "cache-redis"
    result = check.func()
    assert result.status is Status.PASS
    assert result.observed_unit == "ms"
    redis_server.pause()
    warned = check.func()  # the ping times out: the breaker counts it, the tier serves
    assert warned.status is Status.WARN
    assert warned.output == "fallback: memory"
    for _ in range(THRESHOLD):
        store.get("x")
    with redis_io() as io:
        assert check.func().status is Status.WARN
    assert io == {"connect": 0, "send": 0}  # no network call while open
    redis_server.resume()
    store.close()
    memory = sync_store(None)
    assert store_health_check(memory).func().status is Status.PASS
    memory.close()


# -- asyncio ---------------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_async_outage_serves_from_memory_and_recovers(redis_server, fault):
    async def scenario():
        store = async_store(redis_server.url)
        for i in range(20):
            assert await store.set(f"k{i}", f"v{i}") is Source.REDIS
        await store.set("during", b"before")
        break_(redis_server, fault)
        records = []
        for i in range(200):
            was_open = store.breaker.state is not BreakerState.CLOSED
            with redis_io(asyncio.current_task) as io:  # not the probe task's calls
                if i % 2:
                    assert await store.get(f"k{i % 20}") == f"v{i % 20}".encode()
                else:
                    await store.set(f"w{i}", b"x")
            records.append((was_open, io["send"] + io["connect"] > 0))
        assert_no_redis_after_open(records)
        assert await store.set("during", b"outage") is Source.MEMORY
        check = store_health_check(store)
        assert (await check.func()).status is Status.WARN
        await asyncio.to_thread(mend, redis_server, fault)
        deadline = time.monotonic() + 30
        while store.degraded or store.core.pending:
            assert time.monotonic() < deadline, "the probe task did not recover"
            await asyncio.sleep(0.02)
        assert await store.get("during") is None
        assert (await check.func()).status is Status.PASS
        await store.aclose()

    asyncio.run(scenario())


def test_async_memory_only():
    async def scenario():
        async with async_store(None) as store:
            assert await store.set("a", b"1") is Source.MEMORY
            assert await store.incr("n", 3) == 3
            assert await store.delete_prefix("a") == 1
            assert await store.delete("n") == 1
            assert await store.ping() is False
            assert (await store.health()).status is Status.PASS

    asyncio.run(scenario())


# -- client factory --------------------------------------------------------------------------------


def test_factory_settings_are_explicit_and_retry_free():
    client = redis_client("redis://127.0.0.1:1/0", timeout=0.25)
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25
    assert kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["socket_keepalive"] is True
    assert kwargs["health_check_interval"] == 30
    assert kwargs["retry"].get_retries() == 0
    assert pool.max_connections == 50
    assert pool.timeout == 0.25
    client.close()
    unix = redis_client("unix:///tmp/fender-none.sock?db=1")
    assert "socket_keepalive" not in unix.connection_pool.connection_kwargs
    unix.close()


def test_sentinel_client_is_built_with_the_same_limits():
    client = redis_client(
        "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/3?sentinel_password=spw"
    )
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.5
    assert kwargs["password"] == "pw"
    assert kwargs["db"] == 3
    sentinels = client.connection_pool.sentinel_manager.sentinels
    assert len(sentinels) == 2
    skw = sentinels[0].connection_pool.connection_kwargs
    assert skw["socket_timeout"] == 0.5
    assert skw["password"] == "spw"
    assert skw["retry"].get_retries() == 0
    client.close()


# Counted rather than timed: redis-py 8 retries ten times by default, and each retry is one
# more connect (dead server) or one more write (hung server).


def test_dead_redis_costs_one_timeout_not_retries():
    port = free_port()
    client = redis_client(f"redis://127.0.0.1:{port}/0", timeout=0.1)
    with redis_io() as io, pytest.raises(redis.ConnectionError):
        client.get("k")
    assert io == {"connect": 1, "send": 0}
    client.close()


@pytest.mark.redis
def test_hung_redis_costs_one_timeout_not_retries(redis_server):
    client = redis_client(redis_server.url, timeout=TIMEOUT)
    client.ping()
    redis_server.pause()
    with redis_io() as io, pytest.raises(redis.TimeoutError):
        client.get("k")
    assert io == {"connect": 0, "send": 1}
    redis_server.resume()
    client.close()

    async def hung():
        aclient = async_redis_client(redis_server.url, timeout=TIMEOUT)
        await aclient.ping()
        redis_server.pause()
        with (
            redis_io(asyncio.current_task) as io,
            pytest.raises((redis.TimeoutError, TimeoutError)),
        ):
            await aclient.get("k")
        redis_server.resume()
        await aclient.aclose()
        return io

    assert asyncio.run(hung()) == {"connect": 0, "send": 1}


def test_settings_choose_the_backend(redis_url):
    memory = resilient_redis(load_settings({}, env_file=None))
    assert memory.client is None
    memory.close()
    env = {"REDIS_URL": redis_url, "NETWORK_TIMEOUT_SEC": "1.5"}  # Redis must answer
    store = resilient_redis(
        load_settings(env, env_file=None), config=config(), breaker=breaker(),
        tier=TierConfig(max_entries=10),
    )  # fmt: skip
    assert store.client.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    assert store.tier.config.max_entries == 10
    assert store.set("k", b"v") is Source.REDIS
    store.close()


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "service", "db"),
    [
        ("redis://localhost:6379/0", "standalone", (), "", 0),
        ("rediss://u:p@h/1", "standalone", (), "", 0),
        ("unix:///run/redis.sock?db=2", "standalone", (), "", 0),
        (
            "redis+sentinel://s1,s2:26380/main",
            "sentinel",
            (("s1", 26379), ("s2", 26380)),
            "main",
            0,
        ),
        ("redis+sentinel://:p@[::1]:5000/m/4", "sentinel", (("::1", 5000),), "m", 4),
        (
            "redis+cluster://n1:7000,n2:7001?ssl=true",
            "cluster",
            (("n1", 7000), ("n2", 7001)),
            "",
            0,
        ),
    ],
)
def test_url_forms(url, kind, hosts, service, db):
    parsed = parse_redis_url(url)
    assert (parsed.kind, parsed.hosts, parsed.service, parsed.db) == (kind, hosts, service, db)
    assert "p@" not in repr(parsed)


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "http://h",
        "redis://",
        "redis+sentinel://s1",
        "redis+sentinel://s1/m/x",
        "redis+cluster://n1/0",
        "redis+cluster://n1:99999",
    ],
)
def test_bad_urls_name_the_setting_and_hide_the_password(url):
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        parse_redis_url(url)


def test_bad_store_config():
    for field, value in (
        ("on_recovery", "forget"),
        ("probe_interval", 0),
        ("name", ""),
        ("max_journal", -1),
        ("fallback", "yes"),
    ):
        with pytest.raises(ConfigurationError, match=field):
            RedisStoreConfig(**{field: value})
    with pytest.raises(ConfigurationError, match="network_timeout_sec"):
        redis_client("redis://h", timeout=0)
