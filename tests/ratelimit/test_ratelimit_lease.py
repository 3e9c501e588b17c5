"""Lease mode: round trips amortised far from the limit, the stated bound across processes.

The bound (README, ``fender.ratelimit._lease``): with N instances and a lease of ``size``
requests, at most ``N x size`` over the limit in any window, at most ``N x size`` under it;
exact mode admits the limit exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from flask import Flask

import fender
import fender.wsgi
from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.flask import Fender
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._lease import LeaseBook, LeaseConfig
from fender.ratelimit._policy import Algorithm, RateLimitPolicy, parse_policy
from fender.ratelimit._tiered import AsyncTieredLimiter, TieredLimiter
from fender.ratelimit._tiers import Tier
from fender.resilience import BreakerState
from fender.settings import load_settings

from servers import wait_for

_ids = itertools.count()
LEASE = LeaseConfig(mode="lease", size=10)
EXACT = LeaseConfig(mode="exact")
SRC = Path(__file__).resolve().parents[2] / "src"


def fresh_key() -> str:
    return f"lease:{{t{next(_ids)}}}:ip"


def config(url: str, **fields) -> RateLimitConfig:
    fields.setdefault("default", parse_policy("100/minute"))
    fields.setdefault("timeout", 1.0)
    fields.setdefault("instances", 1)
    return RateLimitConfig(redis_url=url, **fields)


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"mode": "fast"}, "rate_limit_mode"),
        ({"size": 0}, "rate_limit_lease_size"),
        ({"size": True}, "rate_limit_lease_size"),
        ({"ttl": 0.0}, "rate_limit_lease_ttl_ms"),
        ({"max_keys": 0}, "rate_limit_lease_max_keys"),
    ],
)
def test_a_bad_lease_setting_names_its_field(fields, name):
    with pytest.raises(ConfigurationError) as caught:
        LeaseConfig(**fields)
    assert caught.value.field == name


def test_settings_choose_the_mode_and_lease_is_the_default():
    assert LeaseConfig.from_settings(load_settings({}, env_file=None)) == LeaseConfig()
    assert LeaseConfig().mode == "lease"
    environ = {"FENDER_RATE_LIMIT_MODE": "exact", "FENDER_RATE_LIMIT_LEASE_SIZE": "25"}
    chosen = LeaseConfig.from_settings(load_settings(environ, env_file=None))
    assert (chosen.mode, chosen.size, chosen.leasing) == ("exact", 25, False)
    with pytest.raises(ConfigurationError):
        load_settings({"FENDER_RATE_LIMIT_MODE": "sometimes"}, env_file=None)


# -- the pure half: no Redis -----------------------------------------------------------------------


def test_the_lease_call_keeps_a_reserve_and_tight_limits_go_exact():
    book = LeaseBook(LEASE, algorithm=Algorithm.GCRA, clock=ManualClock())
    items = [("k", parse_policy("100/minute"))]
    call = book.prepare(items, 1, instances=4)
    assert call is not None
    assert call.size == 10
    assert call.args[1:5] == ("", 1, 10, 40)  # server clock, cost, size, reserve
    assert book.prepare(items, 2, instances=4) is None  # a cost other than 1: exact
    assert book.prepare([("k", parse_policy("7/minute"))], 1, instances=1) is None
    sliding = LeaseBook(LEASE, algorithm=Algorithm.SLIDING_WINDOW)
    assert sliding.prepare(items, 1, instances=1) is None
    assert LeaseBook(EXACT, algorithm=Algorithm.GCRA).prepare(items, 1, instances=1) is None


def test_a_lease_is_spent_locally_until_empty_or_expired():
    clock = ManualClock()
    book = LeaseBook(LEASE, algorithm=Algorithm.GCRA, clock=clock)
    items = [("k", parse_policy("100/minute"))]
    call = book.prepare(items, 1, instances=1)
    assert call is not None
    granted = book.parse(call, [1_000_000, 10, 0])
    assert granted.allowed
    assert book.held() == 9
    assert all(book.spend(items, 1) is granted for _ in range(5))
    assert book.spend(items, 2) is None
    clock.advance(LEASE.ttl)
    assert book.spend(items, 1) is None  # expired: the 4 left are dropped
    assert book.held() == 0
    call = book.prepare(items, 1, instances=1)
    assert call is not None
    assert book.parse(call, [2_000_000, 1, 0]).allowed  # exact answer: no lease kept
    assert book.spend(items, 1) is None
    assert not book.parse(call, [2_000_000, 0, 200_000_000]).allowed


# -- against a real redis-server -------------------------------------------------------------------


@pytest.mark.redis
def test_far_from_the_limit_a_tenth_of_a_round_trip_per_request(redis_url):
    limiter = TieredLimiter(config(redis_url), lease=LeaseConfig(size=20))
    policy = parse_policy("100000/minute")
    key = fresh_key()
    assert all(limiter.decide([(key, policy)]).allowed for _ in range(1000))
    assert limiter.round_trips <= 100
    assert limiter.serving is Tier.REDIS
    exact = TieredLimiter(config(redis_url), lease=EXACT)
    exact.decide([(fresh_key(), policy)])  # the first call loads the script (NOSCRIPT, EVAL)
    before = exact.round_trips
    assert all(exact.decide([(fresh_key(), policy)]).allowed for _ in range(50))
    assert exact.round_trips - before == 50
    limiter.close()
    exact.close()


@pytest.mark.redis
def test_the_async_limiter_leases_alike(redis_url):
    async def run() -> tuple[int, int]:
        limiter = AsyncTieredLimiter(config(redis_url), lease=LEASE)
        policy = parse_policy("100/minute")
        key = fresh_key()
        allowed = sum([(await limiter.decide([(key, policy)])).allowed for _ in range(150)])
        trips = limiter.round_trips
        await limiter.aclose()
        return allowed, trips

    allowed, trips = asyncio.run(run())
    assert allowed == 100  # one instance: leases are counted before they are spent
    assert trips < 150


@pytest.mark.redis
def test_near_the_limit_each_request_asks_redis(redis_url):
    limiter = TieredLimiter(config(redis_url, instances=4), lease=LEASE)
    policy = parse_policy("100/minute")
    limiter.decide([(fresh_key(), policy)])  # loads the scripts where the server lacks them
    limiter.decide([(fresh_key(), parse_policy("5/minute"))])
    before = limiter.round_trips
    key = fresh_key()
    admitted = sum(limiter.decide([(key, policy)]).allowed for _ in range(120))
    assert admitted == 100
    # Leases while 10 + 40 requests stay (6 leases, 60 requests), then one call a request.
    assert limiter.round_trips - before == 6 + (120 - 60)
    limiter.close()


WORKER = """
import sys
import redis
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._lease import LeaseConfig
from fender.ratelimit._policy import parse_policy
from fender.ratelimit._tiered import TieredLimiter

url, key, mode, tries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
config = RateLimitConfig(redis_url=url, timeout=2.0, instances=4)
limiter = TieredLimiter(config, lease=LeaseConfig(mode=mode, size=10))
policy = parse_policy("100/hour")
client = redis.Redis.from_url(url)
client.rpush(key + ":ready", 1)
client.blpop([key + ":go"], timeout=30)
admitted = sum(limiter.decide([(key, policy)]).allowed for _ in range(tries))
print(admitted, limiter.round_trips, limiter.serving.value)
"""


def hammer(url: str, mode: str, processes: int = 4, tries: int = 60) -> list[tuple[int, int]]:
    key = fresh_key()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, key, mode, str(tries)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(processes)
    ]
    client = redis.Redis.from_url(url)
    for _ in range(processes):  # every worker connected: start them together
        assert client.blpop([key + ":ready"], timeout=60) is not None
    client.rpush(key + ":go", *([1] * processes))
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        admitted, trips, serving = out.split()
        assert serving == "redis"
        results.append((int(admitted), int(trips)))
    return results


@pytest.mark.redis
@pytest.mark.parametrize(("mode", "bound"), [("lease", 4 * 10), ("exact", 0)])
def test_four_processes_on_one_key_stay_within_the_bound(redis_url, mode, bound):
    results = hammer(redis_url, mode)
    admitted = sum(a for a, _ in results)
    assert 100 - bound <= admitted <= 100 + bound
    if mode == "exact":
        assert admitted == 100
        assert all(trips == 60 for _, trips in results)


@pytest.mark.redis
def test_redis_down_mid_lease_the_fallback_still_limits_then_redis_is_back(redis_server):
    clock = ManualClock()
    limiter = TieredLimiter(
        config(redis_server.url, instances=1, recovery_timeout=0.5), clock=clock, lease=LEASE
    )
    limiter.core.start()
    policy = parse_policy("60/hour")
    key = fresh_key()
    assert limiter.decide([(key, policy)]).allowed  # a lease of 10: 9 held
    held = limiter.leases.held()
    assert held == 9
    redis_server.kill()
    admitted = sum(limiter.decide([(key, policy)]).allowed for _ in range(200))
    assert limiter.serving is Tier.MEMORY
    # The lease already counted in Redis, then the local share (60 x slack 1.5 for N=1).
    assert admitted <= held + 90
    assert admitted >= 90
    redis_server.restart()
    clock.advance(10.0)
    limiter.step()
    clock.advance(0.2)
    limiter.step()
    assert limiter.serving is Tier.REDIS
    trips = limiter.round_trips
    assert limiter.decide([(fresh_key(), policy)]).allowed
    assert limiter.round_trips == trips + 2  # a restarted Redis: NOSCRIPT, then one EVAL
    limiter.close()


def test_one_lease_at_a_time_per_key_while_it_is_taken():
    book = LeaseBook(LEASE, algorithm=Algorithm.GCRA, clock=ManualClock())
    items = [("k", parse_policy("100/minute"))]
    first = book.prepare(items, 1, instances=1)
    assert first is not None
    assert book.prepare(items, 1, instances=1) is None  # concurrent: decided exactly
    book.abandon(first)  # the call failed
    again = book.prepare(items, 1, instances=1)
    assert again is not None
    book.parse(again, [1_000_000, 10, 0])
    assert book.prepare(items, 1, instances=1) is not None


@pytest.mark.redis
def test_concurrent_tasks_take_one_lease_per_key(redis_url):
    async def run() -> tuple[int, int]:
        limiter = AsyncTieredLimiter(config(redis_url), lease=LEASE)
        policy = parse_policy("1000/minute")
        key = fresh_key()

        async def task() -> int:
            return sum([(await limiter.decide([(key, policy)])).allowed for _ in range(20)])

        allowed = sum(await asyncio.gather(*(task() for _ in range(8))))
        held = limiter.leases.held()
        await limiter.aclose()
        return allowed, held

    allowed, held = asyncio.run(run())
    assert allowed == 160
    assert held < LEASE.size


@pytest.mark.parametrize(
    ("environ", "leasing"), [({}, True), ({"FENDER_RATE_LIMIT_MODE": "exact"}, False)]
)
def test_the_app_limiter_takes_its_mode_from_the_settings(environ, leasing):
    settings = load_settings(environ, env_file=None)
    asgi = fender.install(FastAPI(), settings=settings)
    wsgi = fender.wsgi.wrap(Flask(__name__), settings=settings).runtime
    assert asgi.limiter.leases.config.leasing is leasing
    assert wsgi.limiter.leases.config.leasing is leasing


# -- limits marked exact ---------------------------------------------------------------------------


def test_a_policy_marked_exact_is_never_leased():
    book = LeaseBook(LEASE, algorithm=Algorithm.GCRA, clock=ManualClock())
    leased = parse_policy("100/minute")
    exact = RateLimitPolicy(name="login", limits=leased.limits, exact=True)
    assert book.prepare([("k", leased)], 1, instances=1) is not None
    assert book.prepare([("k2", exact)], 1, instances=1) is None
    # stacked with a leasable one: one call decides both, so the request goes exact
    assert book.prepare([("k3", leased), ("k4", exact)], 1, instances=1) is None
    with pytest.raises(ConfigurationError) as caught:
        RateLimitPolicy(name="login", limits=leased.limits, exact="yes")  # type: ignore[arg-type]
    assert caught.value.field == "exact"
    with pytest.raises(ConfigurationError) as caught:
        fender.rate_limit("5/minute", exact=1)  # type: ignore[arg-type]
    assert caught.value.field == "exact"


@pytest.mark.redis
def test_a_route_marked_exact_asks_redis_for_every_request_in_lease_mode(redis_url):
    app = Flask(__name__)

    @app.get("/login")
    @fender.rate_limit("100000/minute", exact=True)
    def login() -> str:
        return "ok"

    @app.get("/items")
    @fender.rate_limit("100000/minute")
    def items() -> str:
        return "ok"

    Fender(app, redis_url=redis_url, env="development")
    runtime = app.extensions["fender"]
    assert runtime.limiter.leases.config.leasing  # the default mode: lease
    client = app.test_client()
    assert client.get("/items").status_code == 200  # a WSGI app starts on its first request
    # The breaker is the process's ("ratelimit"): an earlier test's dead Redis may have left it
    # half open, and the limiter serves from memory until its probe closes it.
    breaker = runtime.limiter.core.breaker
    wait_for(
        lambda: breaker.state is BreakerState.CLOSED and runtime.limiter.serving is Tier.REDIS,
        30,
        "the limiter on Redis, its breaker closed",
    )
    for path in ("/login", "/items"):  # the first calls load the scripts where missing
        assert client.get(path).status_code == 200

    def round_trips(path: str, requests: int) -> int:
        before = runtime.limiter.round_trips
        for _ in range(requests):
            response = client.get(path)
            assert response.status_code == 200
            assert response.headers["ratelimit-policy"]
        return runtime.limiter.round_trips - before

    assert round_trips("/login", 40) == 40
    assert round_trips("/items", 40) <= 4  # leases of 20 requests
