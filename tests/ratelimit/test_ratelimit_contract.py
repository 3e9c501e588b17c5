"""One contract for every rate-limit backend: memory and Redis must decide identically."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from fender._clock import ManualClock
from fender.ratelimit import MemoryLimiter, RedisLimiter, parse_policy
from fender.ratelimit._policy import Algorithm

_ids = itertools.count()


@dataclass
class Backend:
    limiter: Any
    clock: ManualClock
    client: redis.Redis | None = None

    def ttl(self, key: str) -> float | None:
        """Seconds the stored state under ``key`` lives on (None: no state)."""
        if self.client is None:
            return self.limiter.ttl(key)
        pttl = self.client.pttl(key)
        return None if pttl < 0 else pttl / 1000

    def stored(self, key: str) -> Any:
        if self.client is None:
            entry = self.limiter._store.get(key)
            return None if entry is None else entry[0]
        return self.client.get(key)


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
def backend_factory(request):
    clock = ManualClock()
    if request.param == "memory":
        yield lambda algorithm: Backend(MemoryLimiter(algorithm=algorithm, clock=clock), clock)
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield lambda algorithm: Backend(
        RedisLimiter(client, algorithm=algorithm, clock=clock), clock, client
    )
    client.close()


@pytest.fixture
def gcra(backend_factory):
    return backend_factory(Algorithm.GCRA)


@pytest.fixture
def sliding(backend_factory):
    return backend_factory(Algorithm.SLIDING_WINDOW)


@pytest.fixture(params=list(Algorithm), ids=[a.value for a in Algorithm])
def backend(request, backend_factory):
    return backend_factory(request.param)


def key() -> str:
    return f"test:{{{next(_ids)}}}:ip"


def allowed(backend, k, policy, n, cost=1):
    return [backend.limiter.hit(k, policy, cost).allowed for _ in range(n)]


def test_burst_then_the_sustained_rate_gcra(gcra):
    policy, k = parse_policy("10/second"), key()
    assert allowed(gcra, k, policy, 11) == [True] * 10 + [False]
    rejected = gcra.limiter.hit(k, policy)
    assert rejected.retry_after == pytest.approx(0.1)
    assert rejected.remaining == 0
    assert rejected.reset_after == pytest.approx(1.0)
    gcra.clock.advance(0.099999)
    assert not gcra.limiter.hit(k, policy).allowed
    gcra.clock.advance(0.000001)
    assert allowed(gcra, k, policy, 2) == [True, False]
    gcra.clock.advance(0.15)
    assert allowed(gcra, k, policy, 2) == [True, False]


def test_explicit_burst_above_the_rate_gcra(gcra):
    policy, k = parse_policy("1/second burst 5"), key()
    assert allowed(gcra, k, policy, 6) == [True] * 5 + [False]
    gcra.clock.advance(1)
    assert allowed(gcra, k, policy, 2) == [True, False]


def test_window_edges_sliding(sliding):
    policy, k = parse_policy("10/second"), key()
    # ManualClock starts at 1000.0 s: a window edge.
    assert allowed(sliding, k, policy, 11) == [True] * 10 + [False]
    sliding.clock.set(1000.999)
    assert not sliding.limiter.hit(k, policy).allowed
    sliding.clock.set(1001.0)  # the previous window still weighs in fully
    assert not sliding.limiter.hit(k, policy).allowed
    sliding.clock.set(1001.5)  # half of it slid out: 5 more
    assert allowed(sliding, k, policy, 6) == [True] * 5 + [False]
    sliding.clock.set(1002.0)  # the previous window held 5
    assert allowed(sliding, k, policy, 6) == [True] * 5 + [False]


@pytest.mark.parametrize("text", ["10/second", "10/second burst 4"])
def test_at_most_limit_plus_burst_across_any_edge(backend, text):
    policy, k = parse_policy(text), key()
    limit = policy.limits[0]
    burst = limit.capacity(backend.limiter.algorithm)
    admitted = []
    for step in range(3000):  # one request per millisecond for three seconds
        if backend.limiter.hit(k, policy).allowed:
            admitted.append(step)
        backend.clock.advance(0.001)
    for i, start in enumerate(admitted):
        in_window = sum(1 for t in admitted[i:] if t < start + 1000)
        assert in_window <= limit.count + burst
    # Over three seconds the sustained rate holds: the burst plus 10 per second at most.
    assert len(admitted) <= burst + 30


def test_waiting_retry_after_is_exactly_enough(backend):
    policy, k = parse_policy("3/second; 5/10seconds"), key()
    for _ in range(40):
        decision = backend.limiter.hit(k, policy)
        if not decision.allowed:
            backend.clock.advance(decision.retry_after - 0.000001)
            assert not backend.limiter.hit(k, policy).allowed
            backend.clock.advance(0.000001)
            assert backend.limiter.hit(k, policy).allowed


def test_cost_per_request(backend):
    policy, k = parse_policy("10/second"), key()
    first = backend.limiter.hit(k, policy, cost=4)
    assert first.allowed
    assert first.remaining == 6
    assert backend.limiter.hit(k, policy, cost=4).allowed
    third = backend.limiter.hit(k, policy, cost=4)
    assert not third.allowed
    assert third.remaining == 2
    assert backend.limiter.hit(k, policy, cost=2).allowed
    peek = backend.limiter.hit(k, policy, cost=0)
    assert peek.allowed
    assert peek.remaining == 0


def test_cost_above_the_burst_is_rejected_with_a_reason(backend):
    policy, k = parse_policy("10/second"), key()
    decision = backend.limiter.hit(k, policy, cost=11)
    assert not decision.allowed
    assert decision.retry_after is None
    assert "exceeds the burst 10" in decision.reason
    assert backend.stored(f"{k}:{'g' if backend.limiter.algorithm == 'gcra' else 's'}1") is None
    with pytest.raises(ValueError, match="cost"):
        backend.limiter.hit(k, policy, cost=-1)


def test_several_limits_all_must_allow_and_a_rejection_consumes_nothing(backend):
    policy, k = parse_policy("3/second; 5/minute", name="api"), key()
    assert allowed(backend, k, policy, 4) == [True, True, True, False]
    rejected = backend.limiter.hit(k, policy)
    assert rejected.policy == "api:1s"
    by_name = {s.name: s for s in rejected.statuses}
    assert by_name["api:60s"].remaining == 2  # the minute limit was not charged
    backend.clock.advance(2)  # the second limit is empty again, under either algorithm
    assert allowed(backend, k, policy, 3) == [True, True, False]
    minute = backend.limiter.hit(k, policy)
    assert minute.policy == "api:60s"
    assert minute.limit == 5
    assert minute.window == 60
    assert minute.retry_after > 1


def test_several_keys_in_one_decision(backend):
    ip, user = key(), key()
    per_ip, per_user = parse_policy("100/minute", name="ip"), parse_policy("2/minute", name="user")
    items = [(ip, per_ip), (user, per_user)]
    assert [backend.limiter.decide(items).allowed for _ in range(3)] == [True, True, False]
    assert backend.limiter.hit(ip, per_ip).remaining == 97  # 2 counted, the rejection not


def test_keys_expire_when_they_would_be_full_again(backend):
    policy, k = parse_policy("10/minute; 100/hour"), key()
    for _ in range(5):
        decided = time.monotonic()
        decision = backend.limiter.hit(k, policy)
    letter = "g" if backend.limiter.algorithm == "gcra" else "s"

    def assert_ttl(cell: str, expected: float) -> None:
        # Redis's clock runs on between the decision and the read (the manual clock does not):
        # the TTL is at most what was set and less by no more than the time since; PX is whole
        # milliseconds.
        ttl = backend.ttl(cell)
        assert ttl is not None, cell
        assert expected - (time.monotonic() - decided) - 0.002 <= ttl <= expected + 0.002, cell

    for status in decision.statuses:
        assert_ttl(status.key, status.reset_after)
    if backend.limiter.algorithm == "gcra":
        assert_ttl(f"{k}:{letter}60", 30)
        assert_ttl(f"{k}:{letter}3600", 180)
    if backend.client is None:  # the manual clock drives memory expiry; Redis uses its own
        backend.clock.advance(decision.statuses[0].reset_after)
        assert backend.ttl(decision.statuses[0].key) is None


def test_rejected_request_writes_nothing(backend):
    policy, k = parse_policy("2/minute"), key()
    allowed(backend, k, policy, 2)
    cell = decision_key = backend.limiter.hit(k, policy).key
    before = backend.stored(cell)
    ttl = backend.ttl(decision_key)
    backend.clock.advance(1)
    assert not backend.limiter.hit(k, policy).allowed
    assert backend.stored(cell) == before
    if backend.client is None:
        assert backend.ttl(cell) == pytest.approx(ttl - 1)
