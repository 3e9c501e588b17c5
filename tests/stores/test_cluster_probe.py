"""Is Redis serving: the one check of the store and the rate limiter, and the close of a cluster.

Sans-I/O: the store's flows are driven by hand with the replies a cluster would give, on a
manual clock. The real processes (a cluster losing a node) are in test_cluster_node_loss.py.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
import redis.asyncio.cluster
from redis import exceptions as redis_errors

from fender._clock import ManualClock
from fender._flow import adrive, drive
from fender._status import Status
from fender.redis import RedisStoreConfig, async_redis_client, redis_client
from fender.resilience import BreakerConfig, BreakerState, CircuitBreaker
from fender.stores._clients import aclose_client, is_cluster
from fender.stores._core import StoreCore
from fender.stores._serving import CLUSTER_INFO, PING, ServingCheck

OK = {"cluster_state": "ok", "cluster_slots_ok": "16384"}
FAIL = {"cluster_state": "fail", "cluster_slots_ok": "10923"}
_names = itertools.count()


# -- the question and the verdict ------------------------------------------------------------------


def test_a_server_is_asked_ping_a_cluster_every_primary():
    assert ServingCheck().command == PING
    assert ServingCheck(cluster=True).command == CLUSTER_INFO
    name, args, kwargs = CLUSTER_INFO
    assert (name, args, kwargs) == (
        "execute_command",
        ("CLUSTER INFO",),
        {"target_nodes": "primaries"},
    )


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param({"a:1": OK, "b:2": OK, "c:3": OK}, id="every-primary-ok"),
        pytest.param(OK, id="one-primary"),  # redis-py unwraps a single node's reply
    ],
)
def test_a_cluster_serves_when_every_primary_reports_ok(reply):
    ServingCheck(cluster=True).verify(reply)


@pytest.mark.parametrize(
    ("reply", "error", "names"),
    [
        pytest.param({"a:1": OK, "b:2": FAIL, "c:3": FAIL}, redis_errors.ClusterDownError,
                     "b:2, c:3", id="clusterdown"),
        pytest.param(FAIL, redis_errors.ClusterDownError, "the only primary", id="one-primary"),
        pytest.param({"a:1": OK, "b:2": "garbage"}, redis_errors.ClusterDownError, "b:2",
                     id="not-an-info"),
        pytest.param({}, redis_errors.ClusterError, "{}", id="no-primary"),
        pytest.param(True, redis_errors.ClusterError, "True", id="a-ping-reply"),
    ],
)  # fmt: skip
def test_a_cluster_does_not_serve_otherwise(reply, error, names):
    with pytest.raises(error) as raised:
        ServingCheck(cluster=True).verify(reply)
    assert names in str(raised.value)


def test_a_server_serves_when_ping_answers():
    ServingCheck().verify(True)
    with pytest.raises(redis_errors.ConnectionError):
        ServingCheck().verify(False)


def test_clients_are_told_apart_without_connecting():
    dead = "127.0.0.1:1"  # nothing listens: building a client must not connect
    sync_cluster = redis_client(f"redis+cluster://{dead}")  # fender's lazily built client
    sync_server = redis_client(f"redis://{dead}/0")
    async_cluster = async_redis_client(f"redis+cluster://{dead}")
    async_server = async_redis_client(f"redis://{dead}/0")
    assert (is_cluster(sync_cluster), is_cluster(async_cluster)) == (True, True)
    assert (is_cluster(sync_server), is_cluster(async_server)) == (False, False)
    assert not is_cluster(None)
    assert ServingCheck.for_client(sync_cluster).cluster
    assert not ServingCheck.for_client(async_server).cluster
    sync_cluster.close()
    sync_server.close()
    asyncio.run(aclose_client(async_cluster))
    asyncio.run(aclose_client(async_server))


def test_the_drivers_send_replies_and_throw_errors_into_a_flow():
    def flow():
        first = yield "one"
        try:
            yield "two"
        except KeyError as exc:
            return (first, str(exc))
        return (first, "no error")

    def execute(command):
        if command == "two":
            raise KeyError("boom")
        return command.upper()

    async def aexecute(command):
        return execute(command)

    assert drive(flow(), execute) == ("ONE", "'boom'")
    assert asyncio.run(adrive(flow(), aexecute)) == ("ONE", "'boom'")


# -- the store on a cluster (sans-I/O) -------------------------------------------------------------


def cluster_core(clock: ManualClock) -> StoreCore:
    name = f"cluster-probe-{next(_names)}"
    breaker = CircuitBreaker(
        name,
        BreakerConfig(
            failure_threshold=1,
            failure_rate_threshold=None,
            slow_call_rate_threshold=None,
            recovery_timeout=1.0,
            recovery_jitter=0.0,
            permitted_calls_in_half_open=1,
            success_threshold=2,
        ),
        clock=clock,
    )
    return StoreCore(
        has_redis=True, cluster=True, config=RedisStoreConfig(name=name), breaker=breaker,
        clock=clock,
    )  # fmt: skip


def answer(flow, reply):
    """Run ``flow`` against a cluster that answers every command with ``reply``; return the
    commands it sent, and its result."""
    sent = []

    def execute(command):
        sent.append(command)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    return sent, drive(flow, execute)


def test_health_on_a_cluster_asks_every_primary_and_warns_when_one_fails():
    core = cluster_core(ManualClock())
    sent, health = answer(core.health_flow(), {"a:1": OK, "b:2": OK})
    assert sent == [(CLUSTER_INFO,)]
    assert health.status is Status.PASS
    _, health = answer(core.health_flow(), {"a:1": OK, "b:2": FAIL})
    assert (health.status, health.output) == (Status.WARN, "fallback: memory")
    # the failure is Redis's: it counts against the breaker (threshold 1: open)
    assert core.breaker.state is BreakerState.OPEN
    assert core.degraded


def test_ping_on_a_cluster_is_false_while_a_primary_is_unreachable():
    core = cluster_core(ManualClock())
    assert answer(core.ping_flow(), {"a:1": OK, "b:2": OK}) == ([(CLUSTER_INFO,)], True)
    _, ping = answer(core.ping_flow(), redis_errors.ConnectionError("refused"))
    assert ping is False


def test_the_probe_closes_the_breaker_only_once_every_primary_is_ok():
    clock = ManualClock()
    core = cluster_core(clock)
    answer(core.ping_flow(), redis_errors.ConnectionError("refused"))  # opens (threshold 1)
    assert core.degraded
    for reply in (
        {"a:1": OK, "b:2": FAIL},  # CLUSTERDOWN: the live nodes answer, but not ok
        redis_errors.ConnectionError("refused"),  # a primary is gone
    ):
        for _ in range(3):  # every recovery timeout, the probe asks again: still down
            clock.advance(1.0)
            sent, done = answer(core.probe_flow(), reply)
            assert (sent, done) == ([(CLUSTER_INFO,)], False)
            assert core.breaker.state is BreakerState.OPEN
    clock.advance(1.0)
    assert answer(core.probe_flow(), {"a:1": OK, "b:2": OK})[1] is False  # one success of two
    assert core.degraded
    clock.advance(0.1)
    assert answer(core.probe_flow(), {"a:1": OK, "b:2": OK})[1] is True
    assert not core.degraded


# -- closing an asyncio cluster client -------------------------------------------------------------


def test_aclose_client_closes_a_cluster_that_its_own_aclose_skips(monkeypatch):
    closed = []

    async def record(manager, attr="nodes_cache"):
        closed.append(attr)

    monkeypatch.setattr(redis.asyncio.cluster.NodesManager, "aclose", record)

    async def scenario():
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=1)
        # As after a connection error: "initialise again before the next command".
        assert client._initialize
        await client.aclose()  # redis-py: nothing to do while the flag is set
        assert closed == []
        await aclose_client(client)
        assert closed == ["nodes_cache", "startup_nodes"]

    asyncio.run(scenario())


def test_aclose_client_closes_a_server_client_as_usual():
    class Client:
        closed = 0

        async def aclose(self):
            self.closed += 1

    client = Client()
    asyncio.run(aclose_client(client))
    assert client.closed == 1
