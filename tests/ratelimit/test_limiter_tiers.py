"""Tiered limiter: memory and Redis agree; Redis dies or hangs, memory serves, Redis is back."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.ratelimit._config import RateLimitConfig, parse_paths
from fender.ratelimit._policy import RateLimitPolicy, parse_policy
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter
from fender.ratelimit._tiers import UNAVAILABLE, Tier, local_policy
from fender.resilience import BreakerState
from fender.settings import load_settings

from servers import free_port, redis_io, wait_for

_ids = itertools.count()
# Where Redis is expected to answer, a loaded machine must not turn a slow answer into a switch
# to memory (one failure switches): generous. Where a test freezes Redis, each call that reaches
# it costs HUNG.
TIMEOUT = 1.0
HUNG = 0.5


def fresh_key() -> str:
    return f"test:{{t{next(_ids)}}}:ip"


def config(url: str = "", **fields) -> RateLimitConfig:
    fields.setdefault("default", parse_policy("100/minute"))
    fields.setdefault("timeout", TIMEOUT)
    return RateLimitConfig(redis_url=url, **fields)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def outcome(decision):
    return (
        decision.allowed,
        decision.remaining,
        decision.limit,
        decision.policy,
        round(decision.retry_after or 0.0, 6),
        round(decision.reset_after, 6),
    )


# -- contract: the memory tier and the Redis tier decide alike -------------------------------------


@pytest.mark.redis
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4_000_000)), min_size=1, max_size=25
    ),
    algorithm=st.sampled_from(["gcra", "sliding"]),
)
def test_memory_and_redis_tiers_decide_alike(redis_url, steps, algorithm):
    policy = parse_policy("5/10seconds; 20/minute")
    clock = ManualClock()
    memory = TieredLimiter(config(algorithm=algorithm), clock=clock)
    client = redis.Redis.from_url(redis_url)
    shared = TieredLimiter(
        config(redis_url, algorithm=algorithm), client=client, clock=clock, redis_clock=clock
    )
    key = fresh_key()
    try:
        for cost, advance_us in steps:
            clock.advance(advance_us / 1_000_000)
            left = memory.decide([(key, policy)], cost)
            right = shared.decide([(key, policy)], cost)
            assert outcome(left) == outcome(right)
        assert shared.serving is Tier.REDIS
        assert memory.serving is Tier.MEMORY
    finally:
        client.close()


@pytest.mark.redis
def test_one_evalsha_covers_every_limit_of_a_request(redis_url):
    client = redis.Redis.from_url(redis_url)
    limiter = TieredLimiter(config(redis_url), client=client)
    before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    items = [
        (fresh_key(), parse_policy("10/second; 100/minute", name="ip")),
        (fresh_key(), parse_policy("1000/hour", name="route")),
        (fresh_key(), parse_policy("5/second", name="user")),
    ]
    limiter.decide(items)
    after = client.info("commandstats")["cmdstat_evalsha"]["calls"]
    # The first call of a fresh server may be an EVAL (script load) instead.
    assert after - before <= 1
    assert client.info("commandstats").get("cmdstat_eval", {}).get("calls", 0) + after >= 1
    assert len(client.keys("test:*")) == 4
    client.close()


# -- switching to the fallback ---------------------------------------------------------------------


def exhaust(limiter, key, policy, n):
    return sum(limiter.decide([(key, policy)]).allowed for _ in range(n))


@pytest.mark.redis
def test_a_killed_redis_switches_to_memory_with_no_exception(redis_server, caplog):
    caplog.set_level(logging.INFO, logger="fender.ratelimit")
    limiter = TieredLimiter(config(redis_server.url, instances=1))
    policy = parse_policy("1000/minute")
    key = fresh_key()
    errors = sample("rate_limit_store_errors_total")
    assert limiter.decide([(key, policy)]).allowed
    assert limiter.serving is Tier.REDIS
    redis_server.kill()
    decisions = [limiter.decide([(key, policy)]) for _ in range(200)]
    assert all(d.allowed for d in decisions)
    assert limiter.serving is Tier.MEMORY
    assert limiter.core.breaker.state is BreakerState.OPEN
    # One call failed; the 199 others made no Redis call (each would have failed and counted).
    assert sample("rate_limit_store_errors_total") - errors == 1
    assert sample("rate_limit_backend", backend="memory") == 1
    assert sample("rate_limit_backend", backend="redis") == 0
    switches = [r for r in caplog.records if r.getMessage().startswith("rate_limit_backend")]
    assert [r.getMessage() for r in switches] == ["rate_limit_backend_degraded"]
    assert switches[0].to_backend == "memory"


@pytest.mark.redis
def test_a_hung_redis_costs_one_timeout_then_nothing(redis_server):
    limiter = TieredLimiter(config(redis_server.url, instances=1, timeout=HUNG))
    policy = parse_policy("1000/minute")
    key = fresh_key()
    limiter.decide([(key, policy)])
    assert limiter.serving is Tier.REDIS
    errors = sample("rate_limit_store_errors_total")
    redis_server.pause()
    started = time.perf_counter()
    with redis_io() as first:
        assert limiter.decide([(key, policy)]).allowed
    waited = time.perf_counter() - started
    with redis_io() as rest:
        assert all(limiter.decide([(key, policy)]).allowed for _ in range(49))
    assert limiter.serving is Tier.MEMORY
    # Counted, not timed: one write (no retry) that waited for its timeout, then no Redis call.
    assert first == {"connect": 0, "send": 1}
    assert waited >= HUNG * 0.8
    assert rest == {"connect": 0, "send": 0}
    assert sample("rate_limit_store_errors_total") - errors == 1


@pytest.mark.redis
def test_the_local_share_uses_the_instance_count_from_the_heartbeat(redis_server):
    clock = ManualClock()
    url = redis_server.url
    instances = [TieredLimiter(config(url), clock=clock) for _ in range(3)]
    for limiter in instances:
        limiter.core.start()
        limiter.step()  # one heartbeat each
    instances[0].step()  # not due again yet: nothing is sent
    clock.advance(2.0)
    instances[0].step()
    assert instances[0].core.counted == 3
    assert instances[0].core.instances == 3
    redis_server.kill()
    policy = parse_policy("10/minute")
    key = fresh_key()
    admitted = exhaust(instances[0], key, policy, 30)
    assert admitted == math.ceil(math.ceil(10 / 3) * 1.5) == 6
    assert instances[0].serving is Tier.MEMORY


@pytest.mark.redis
def test_instances_from_the_settings_win_over_the_heartbeat(redis_server):
    clock = ManualClock()
    limiter = TieredLimiter(config(redis_server.url, instances=4, slack=2.0), clock=clock)
    limiter.core.start()
    limiter.step()
    assert limiter.core.counted == 1
    redis_server.kill()
    assert exhaust(limiter, fresh_key(), parse_policy("100/minute"), 200) == 50


def test_local_policy_shares_count_and_burst():
    policy = parse_policy("100/minute burst 200; 10/second", name="api")
    local = local_policy(policy, 4, 1.5)
    assert [(lim.count, lim.burst, lim.period) for lim in local.limits] == [
        (38, 75, 60),
        (5, 5, 1),
    ]
    assert local.name == "api"
    assert local_policy(parse_policy("1/hour"), 50, 1.0).limits[0].count == 1


# -- coming back -----------------------------------------------------------------------------------


@pytest.mark.redis
def test_recovery_is_probed_in_the_background_not_by_requests(redis_server):
    clock = ManualClock()
    limiter = TieredLimiter(config(redis_server.url, instances=1), clock=clock)
    limiter.core.start()
    policy = parse_policy("1000/minute")
    redis_server.kill()
    limiter.decide([(fresh_key(), policy)])
    assert limiter.serving is Tier.MEMORY
    redis_server.restart()
    clock.advance(10.0)
    for _ in range(20):  # requests never probe: they stay on memory
        limiter.decide([(fresh_key(), policy)])
    assert limiter.serving is Tier.MEMORY
    limiter.step()  # first probe: HALF_OPEN -> one success
    assert limiter.serving is Tier.MEMORY
    clock.advance(0.2)
    assert limiter.step() == pytest.approx(0.2)  # second success closes
    assert limiter.serving is Tier.REDIS
    assert limiter.decide([(fresh_key(), policy)]).allowed
    assert sample("rate_limit_backend", backend="redis") == 1


@pytest.mark.redis
def test_a_failed_probe_waits_for_the_recovery_timeout(redis_server):
    clock = ManualClock()
    limiter = TieredLimiter(config(redis_server.url, instances=1), clock=clock)
    limiter.core.start()
    redis_server.kill()
    limiter.decide([(fresh_key(), parse_policy("10/minute"))])
    assert limiter.step() == pytest.approx(0.2)
    clock.advance(0.6)
    limiter.step()  # a probe against the dead server: fails, reopens
    assert limiter.core.breaker.state is BreakerState.OPEN
    redis_server.start()
    limiter.step()  # still within the recovery timeout: no probe
    assert limiter.core.breaker.state is BreakerState.OPEN
    clock.advance(0.6)
    limiter.step()
    clock.advance(0.2)
    limiter.step()
    assert limiter.serving is Tier.REDIS


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["pause", "kill"])
def test_back_on_redis_within_two_seconds_of_it_answering(redis_server, fault, caplog):
    caplog.set_level(logging.INFO, logger="fender.ratelimit")
    limiter = TieredLimiter(config(redis_server.url, instances=1, timeout=HUNG))
    limiter.start()
    policy = parse_policy("1000/minute")
    try:
        wait_for(lambda: limiter.core.counted == 1, 30, "the first heartbeat")
        getattr(redis_server, fault)()
        assert limiter.decide([(fresh_key(), policy)]).allowed  # trips the breaker
        assert limiter.serving is Tier.MEMORY
        if fault == "pause":
            redis_server.resume()
        else:
            redis_server.restart()
        answering = time.monotonic()
        wait_for(lambda: limiter.serving is Tier.REDIS, 2.0, "the return to Redis")
        recovered = time.monotonic() - answering
        assert recovered < 2.0
        assert limiter.decide([(fresh_key(), policy)]).allowed
        assert limiter.serving is Tier.REDIS
    finally:
        limiter.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "fender.ratelimit"]
    assert messages.count("rate_limit_backend_degraded") == 1
    assert messages.count("rate_limit_backend_recovered") == 1


# -- the fallback policies -------------------------------------------------------------------------


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(
    ("mode", "allowed"), [pytest.param("open", True, id="open"), ("closed", False)]
)
def test_open_and_closed_fallbacks_decide_without_a_store(mode, allowed):
    limiter = TieredLimiter(config(dead_url(), fallback=mode))
    policy = parse_policy("1/minute")
    decisions = [limiter.decide([(fresh_key(), policy)]) for _ in range(5)]
    assert {d.allowed for d in decisions} == {allowed}
    assert {d.reason for d in decisions} == {UNAVAILABLE}
    assert limiter.serving is Tier.NONE
    if not allowed:
        assert decisions[0].retry_after_header() == "1"
    assert sample("rate_limit_backend", backend="none") == 1


def test_local_fallback_still_limits():
    limiter = TieredLimiter(config(dead_url(), instances=2), clock=ManualClock())
    assert exhaust(limiter, fresh_key(), parse_policy("10/minute"), 50) == 8  # ceil(5*1.5)


def test_decisions_are_counted_by_policy_and_outcome():
    limiter = TieredLimiter(config(), clock=ManualClock())
    policy = parse_policy("2/minute", name="counted")
    before = sample("rate_limit_decisions_total", policy="counted", decision="rejected")
    exhaust(limiter, fresh_key(), policy, 5)
    assert sample("rate_limit_decisions_total", policy="counted", decision="rejected") - before == 3


def test_a_bad_cost_is_a_programming_error_not_a_store_failure():
    limiter = TieredLimiter(config(dead_url()))
    with pytest.raises(ValueError, match="cost"):
        limiter.decide([(fresh_key(), parse_policy("1/minute"))], -1)
    assert limiter.serving is Tier.REDIS


@pytest.mark.parametrize("cost", [-1, True, 1.0, "1", None])
def test_a_bad_cost_is_refused_by_the_memory_only_limiters_too(cost):
    policy = parse_policy("1/minute")
    with pytest.raises(ValueError, match="cost"):
        TieredLimiter(config()).decide([(fresh_key(), policy)], cost)

    async def scenario() -> None:
        with pytest.raises(ValueError, match="cost"):
            await AsyncTieredLimiter(config()).decide([(fresh_key(), policy)], cost)

    asyncio.run(scenario())


# -- the async shell -------------------------------------------------------------------------------


@pytest.mark.redis
def test_async_a_hung_redis_never_blocks_the_event_loop(redis_server):
    async def scenario() -> None:
        limiter = AsyncTieredLimiter(config(redis_server.url, instances=1, timeout=HUNG))
        await limiter.start()
        policy = parse_policy("1000/minute")
        key = fresh_key()
        try:
            assert (await limiter.decide([(key, policy)])).allowed
            redis_server.pause()
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.002)
                    ticks += 1

            task = asyncio.create_task(ticker())
            started = time.perf_counter()
            decisions = await asyncio.gather(*(limiter.decide([(key, policy)]) for _ in range(20)))
            elapsed = time.perf_counter() - started
            task.cancel()
            assert all(d.allowed for d in decisions)
            assert limiter.serving is Tier.MEMORY
            # Concurrent, not one after the other (20 timeouts): one timeout, and room for a
            # loaded machine's scheduling.
            assert elapsed < 2 * HUNG
            assert ticks >= 5  # the loop kept running while Redis hung
            redis_server.resume()
            answering = time.monotonic()
            while limiter.serving is not Tier.REDIS:
                assert time.monotonic() - answering < 2.0, "not back on Redis within 2 s"
                await asyncio.sleep(0.02)
            assert (await limiter.decide([(key, policy)])).allowed
        finally:
            await limiter.aclose()

    asyncio.run(scenario())


@pytest.mark.redis
def test_async_and_sync_shells_share_one_core(redis_url):
    async def scenario() -> list[tuple]:
        limiter = AsyncTieredLimiter(config(redis_url))
        key = fresh_key()
        policy = parse_policy("3/minute")
        try:
            return [outcome(await limiter.decide([(key, policy)]))[:3] for _ in range(4)]
        finally:
            await limiter.aclose()

    sync = TieredLimiter(config(redis_url))
    key = fresh_key()
    policy = parse_policy("3/minute")
    expected = [outcome(sync.decide([(key, policy)]))[:3] for _ in range(4)]
    assert asyncio.run(scenario()) == expected
    assert [e[0] for e in expected] == [True, True, True, False]


# -- configuration ---------------------------------------------------------------------------------


def from_env(**env: str) -> RateLimitConfig:
    return RateLimitConfig.from_settings(load_settings(env, env_file=None))


def test_config_from_settings_defaults():
    cfg = from_env()
    assert str(cfg.default) == "100/minute burst 200"
    assert cfg.timeout == 0.05
    assert cfg.slack == 1.5
    assert cfg.fallback == "local"
    assert cfg.headers == "ietf"
    assert cfg.redis_url == ""


def test_config_from_settings_parses_every_field():
    cfg = from_env(
        FENDER_RATE_LIMIT="10/second; 1000/hour",
        FENDER_RATE_LIMIT_PATHS="/login=5/minute | /items/{item_id}=30/minute",
        FENDER_RATE_LIMIT_ALLOW="10.0.0.0/8, 2001:db8::1",
        FENDER_RATE_LIMIT_EXEMPT="/static,/internal/",
        FENDER_TRUSTED_PROXIES="127.0.0.1",
        FENDER_RATE_LIMIT_TIMEOUT_MS="20",
        FENDER_RATE_LIMIT_FALLBACK="closed",
        FENDER_RATE_LIMIT_HEADERS="both",
        FENDER_INSTANCES="7",
    )
    assert set(cfg.paths) == {"/login", "/items/{item_id}"}
    assert cfg.paths["/items/{item_id}"].name == "/items/item_id"
    assert len(cfg.networks) == 2
    assert cfg.exempt == ("/static", "/internal/")
    assert cfg.resolver.resolve("127.0.0.1", x_forwarded_for="203.0.113.9") == "203.0.113.9"
    assert (cfg.timeout, cfg.fallback, cfg.headers, cfg.instances) == (0.02, "closed", "both", 7)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FENDER_RATE_LIMIT": "lots"}, "FENDER_RATE_LIMIT"),
        ({"FENDER_RATE_LIMIT": "10/fortnight"}, "FENDER_RATE_LIMIT"),
        ({"FENDER_RATE_LIMIT_PATHS": "/login"}, "FENDER_RATE_LIMIT_PATHS"),
        ({"FENDER_RATE_LIMIT_PATHS": "login=5/minute"}, "FENDER_RATE_LIMIT_PATHS"),
        ({"FENDER_RATE_LIMIT_PATHS": "/a=5/minute|/a=6/minute"}, "FENDER_RATE_LIMIT_PATHS"),
        ({"FENDER_RATE_LIMIT_PATHS": "/a=five"}, "FENDER_RATE_LIMIT_PATHS"),
        ({"FENDER_RATE_LIMIT_ALLOW": "10.0.0.0/33"}, "FENDER_RATE_LIMIT_ALLOW"),
        ({"FENDER_RATE_LIMIT_EXEMPT": "static"}, "FENDER_RATE_LIMIT_EXEMPT"),
        ({"FENDER_TRUSTED_PROXIES": "*"}, "FENDER_TRUSTED_PROXIES"),
        ({"FENDER_TRUSTED_PROXIES": "proxy.local"}, "FENDER_TRUSTED_PROXIES"),
        (
            {"FENDER_RATE_LIMIT_ALGORITHM": "sliding", "FENDER_RATE_LIMIT": "10/minute burst 20"},
            "FENDER_RATE_LIMIT",
        ),
        (
            {
                "FENDER_RATE_LIMIT_ALGORITHM": "sliding",
                "FENDER_RATE_LIMIT": "10/minute",
                "FENDER_RATE_LIMIT_PATHS": "/a=5/minute burst 9",
            },
            "FENDER_RATE_LIMIT_PATHS",
        ),
    ],
)
def test_config_errors_name_the_environment_variable(env, name):
    with pytest.raises(ConfigurationError) as caught:
        from_env(**env)
    assert caught.value.field == name
    bad = next(iter(env.values())) if len(env) == 1 else env[name]
    assert bad in str(caught.value)


def test_sliding_without_burst_is_fine_and_says_why_burst_is_refused():
    assert from_env(FENDER_RATE_LIMIT_ALGORITHM="sliding", FENDER_RATE_LIMIT="10/minute")
    with pytest.raises(ConfigurationError, match="has no burst"):
        from_env(FENDER_RATE_LIMIT_ALGORITHM="sliding")  # the default has a burst


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"slack": 0.5}, "slack"),
        ({"timeout": 0}, "timeout"),
        ({"instances": 0}, "instances"),
        ({"fallback": "maybe"}, "fallback"),
        ({"headers": "all"}, "headers"),
        ({"trip_after": 0}, "trip_after"),
        ({"algorithm": "leaky"}, "algorithm"),
        ({"user_key": "x"}, "user_key"),
    ],
)
def test_config_fields_are_validated(fields, name):
    with pytest.raises(ConfigurationError) as caught:
        RateLimitConfig(**fields)
    assert caught.value.field == name


def test_parse_paths_skips_empty_entries():
    assert list(parse_paths("|/a=1/second||")) == ["/a"]


def test_each_policy_may_choose_its_own_fallback():
    """A login route rejects while Redis is down, the rest limits locally, a feed stays open."""
    limiter = TieredLimiter(config(dead_url(), instances=1), clock=ManualClock())
    login = RateLimitPolicy(name="login", limits=parse_policy("5/minute").limits, fallback="closed")
    feed = RateLimitPolicy(name="feed", limits=parse_policy("1/minute").limits, fallback="open")
    local = parse_policy("2/minute", name="local")
    assert {limiter.decide([(fresh_key(), login)]).allowed for _ in range(3)} == {False}
    assert {limiter.decide([(fresh_key(), feed)]).allowed for _ in range(3)} == {True}
    assert exhaust(limiter, fresh_key(), local, 10) == 3  # ceil(2/1) * 1.5
    # stacked: a closed one rejects whatever the others say; open ones do not count
    both = limiter.decide([(fresh_key(), local), (fresh_key(), login)])
    assert (both.allowed, both.reason, both.policy) == (False, UNAVAILABLE, "login")
    key = fresh_key()
    counted = [limiter.decide([(key, local), (fresh_key(), feed)]).allowed for _ in range(5)]
    assert counted == [True, True, True, False, False]


def test_a_bad_fallback_is_refused():
    with pytest.raises(ConfigurationError, match="fallback"):
        RateLimitPolicy(name="x", limits=parse_policy("1/minute").limits, fallback="maybe")
