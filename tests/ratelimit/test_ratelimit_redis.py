"""The Redis limiter: one round trip, the server clock, script reloads, both clients."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from fender._clock import ManualClock
from fender.ratelimit import (
    AsyncRedisLimiter,
    KeyBuilder,
    MemoryLimiter,
    RedisLimiter,
    RedisScript,
    parse_policy,
)
from fender.ratelimit._policy import Algorithm

_ids = itertools.count()


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


class CountingClient:
    """Counts the commands (round trips) a limiter sends through a real client."""

    def __init__(self, client):
        self.client = client
        self.calls: list[str] = []

    def evalsha(self, *args):
        self.calls.append("EVALSHA")
        return self.client.evalsha(*args)

    def eval(self, *args):
        self.calls.append("EVAL")
        return self.client.eval(*args)


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5)
    yield client
    client.close()


@pytest.mark.redis
def test_exactly_one_round_trip_per_decision(client):
    counting = CountingClient(client)
    limiter = RedisLimiter(counting)
    keys = KeyBuilder()
    items = [
        (keys.build("203.0.113.9", "ip"), parse_policy("10/second; 1000/hour")),
        (keys.build("203.0.113.9", "user", "42"), parse_policy("5/minute")),
        (keys.build("203.0.113.9", "route", "/login"), parse_policy("100/minute")),
    ]
    limiter.decide(items)  # loads the script (NOSCRIPT then EVAL) on a fresh server
    counting.calls.clear()
    before = commandstats(client)
    for _ in range(20):
        limiter.decide(items)
    after = commandstats(client)
    assert counting.calls == ["EVALSHA"] * 20
    assert after["evalsha"] - before["evalsha"] == 20
    # Only the script's own commands ran besides INFO: no second command from the client.
    assert after.get("eval", 0) == before.get("eval", 0)
    assert after["time"] - before.get("time", 0) == 20


@pytest.mark.redis
def test_noscript_after_a_flush_reloads_transparently(client):
    counting = CountingClient(client)
    limiter = RedisLimiter(counting)
    policy = parse_policy("5/minute")
    assert limiter.hit("k", policy).remaining == 4
    client.script_flush()
    counting.calls.clear()
    assert limiter.hit("k", policy).remaining == 3
    assert counting.calls == ["EVALSHA", "EVAL"]  # two round trips, this once
    counting.calls.clear()
    assert limiter.hit("k", policy).remaining == 2
    assert counting.calls == ["EVALSHA"]


@pytest.mark.redis
def test_survives_a_redis_restart(redis_server):
    client = redis_server.client()
    limiter = RedisLimiter(client)
    policy = parse_policy("5/minute")
    assert limiter.hit("k", policy).allowed
    redis_server.restart()  # no persistence: state and script cache are gone
    client = redis_server.client()
    limiter = RedisLimiter(client)
    assert limiter.hit("k", policy).remaining == 4
    client.close()


@pytest.mark.redis
def test_time_comes_from_the_redis_server(client):
    limiter = RedisLimiter(client)  # no clock: the script calls TIME
    policy = parse_policy("1/hour")
    server_now = client.time()
    first = time.monotonic()
    assert limiter.hit("k", policy).allowed
    decision = limiter.hit("k", policy)
    between = time.monotonic() - first  # the server's clock moved at most this much
    assert not decision.allowed
    assert 3600 - between - 0.001 <= decision.retry_after <= 3600
    tat = int(client.get("k:g3600"))
    expected = (server_now[0] * 1_000_000 + server_now[1]) + 3_600_000_000
    assert 0 <= tat - expected < 5_000_000
    assert abs(server_now[0] - time.time()) < 5


@pytest.mark.redis
def test_async_client_gives_the_same_decisions(redis_url):
    clock = ManualClock()
    policy = parse_policy("3/second; 4/minute")

    async def run():
        client = redis.asyncio.Redis.from_url(redis_url)
        limiter = AsyncRedisLimiter(client, clock=clock)
        try:
            decisions = [await limiter.hit("a", policy) for _ in range(5)]
            await client.script_flush()
            decisions.append(await limiter.hit("a", policy))
            return decisions
        finally:
            await client.aclose()

    decisions = asyncio.run(run())
    sync = RedisLimiter(redis.Redis.from_url(redis_url), clock=clock)
    expected = [sync.hit("b", policy) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    for got, want in zip(decisions, expected, strict=True):
        assert (got.allowed, got.remaining, got.retry_after) == (
            want.allowed,
            want.remaining,
            want.retry_after,
        )


@given(st.text(max_size=20), st.lists(st.text(max_size=10), min_size=1, max_size=4))
def test_keys_of_one_request_share_a_cluster_slot(tag, parts):
    keys = KeyBuilder(prefix="app:rl")
    built = [keys.build(tag, part, "x") for part in parts]
    cells = RedisScript().prepare([(k, parse_policy("1/second; 5/minute")) for k in built]).args
    slots = {key_slot(str(key).encode()) for key in cells[: 2 * len(built)]}
    assert len(slots) == 1


@pytest.mark.redis
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    algorithm=st.sampled_from(list(Algorithm)),
    start=st.sampled_from([1000.0, 1.8e9, 2.5e9]),
    steps=st.lists(
        st.tuples(st.integers(0, 2_500_000), st.integers(0, 4), st.booleans()), max_size=30
    ),
)
def test_redis_script_mirrors_the_python_arithmetic(client, algorithm, start, steps):
    clock = ManualClock(start)
    memory = MemoryLimiter(algorithm=algorithm, clock=clock)
    remote = RedisLimiter(client, algorithm=algorithm, clock=clock)
    n = next(_ids)
    narrow = parse_policy("3/second burst 4; 7/10seconds")
    wide = parse_policy("1000000/day; 2/2seconds", name="user")  # a coarser sliding unit
    if algorithm is Algorithm.SLIDING_WINDOW:
        narrow = parse_policy("3/second; 7/10seconds")
    for dt, cost, both in steps:
        clock.advance(dt / 1_000_000)
        items = [(f"m{{{n}}}", narrow), (f"u{{{n}}}", wide)] if both else [(f"m{{{n}}}", narrow)]
        assert memory.decide(items, cost) == remote.decide(items, cost)


def test_script_verdict_wins_over_a_mismatch(caplog):
    script = RedisScript(clock=ManualClock())
    call = script.prepare([("k", parse_policy("1/second"))])
    with caplog.at_level(logging.ERROR, logger="fender.ratelimit"):
        decision = script.parse(call, [1_000_000_000, 0, 0])  # empty key, yet "rejected"
    assert not decision.allowed
    assert [r.message for r in caplog.records] == ["ratelimit.script_mismatch"]


def test_an_impossible_cost_needs_no_round_trip():
    class NoClient:
        def evalsha(self, *_args):
            raise AssertionError("no I/O expected")

        eval = evalsha

    decision = RedisLimiter(NoClient()).hit("k", parse_policy("2/second"), cost=3)
    assert decision.retry_after is None
    assert not decision.allowed
