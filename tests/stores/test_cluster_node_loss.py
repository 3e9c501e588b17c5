"""The resilient store on a Redis Cluster that loses one node (one shard of three), then heals.

Real processes: a three-master cluster (no replicas, ``cluster-node-timeout 2000``) started once
for the module; each test stops one node (SIGTERM) and the fixture restarts it (same port, same
``nodes.conf``: it rejoins) before the next test. Redis's own behaviour frames the cases:

* until ``cluster-node-timeout`` has passed, the other shards still serve;
* then, with ``cluster-require-full-coverage yes`` (the default), every node answers CLUSTERDOWN;
* with ``no``, the surviving shards keep serving their slots for as long as the node is gone.

The sync and the async store run the same scenario side by side: the async one on an event loop
in a thread of its own, so that its probe task lives between the test's calls.

redis-py sends PING to one node, its "default node": the first primary of CLUSTER SLOTS, the
owner of slot 0. So the store's health check and recovery probe ask every primary instead
(CLUSTER INFO, cluster_state:ok on each: fender.stores._serving). The victim here is another
node than slot 0's, so that a PING to one node could not stand in for the dead shard by luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from fender._status import Status
from fender.redis import (
    REDIS_BREAKER,
    RedisStoreConfig,
    Source,
    async_resilient_redis,
    resilient_redis,
)
from fender.resilience import BreakerState, CircuitBreaker
from fender.settings import load_settings

from servers import wait_for
from topologies import (
    ClusterNode,
    LoopThread,
    all_ok,
    cluster_state,
    cluster_topology,
    cluster_url,
    connections,
    heal,
    owner,
    plain,
)

pytestmark = pytest.mark.redis

# The product's breaker with a short, fixed recovery timeout: the recovery window is then
# RECOVERY (open) + two probes PROBE apart (half-open, success_threshold 2), well under a second
# once the cluster serves; the default (2 s doubling to 30 s) would only make the test wait.
RECOVERY = 0.3
PROBE = 0.05
BREAKER = dataclasses.replace(
    REDIS_BREAKER, recovery_timeout=RECOVERY, recovery_timeout_multiplier=1.0
)
DEADLINE = 30.0  # generous: a loaded CI host, a cluster that takes seconds to agree
_names = itertools.count()


# -- the cluster -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def whole_cluster() -> Iterator[list[ClusterNode]]:
    with cluster_topology() as nodes:
        yield nodes


@pytest.fixture
def cluster(whole_cluster: list[ClusterNode]) -> list[ClusterNode]:
    """The module's cluster, whole again: every node up, full coverage required, state ok."""
    heal(whole_cluster, DEADLINE)
    return whole_cluster


def flagged_failed(observer: ClusterNode, victim: ClusterNode) -> bool:
    """True once ``observer`` holds ``victim`` as FAIL (agreed by a majority, not just PFAIL)."""
    with plain(observer) as client:
        table = client.execute_command("CLUSTER NODES")
    return "fail" in table[f"127.0.0.1:{victim.port}"]["flags"].split(",")


def slot_zero_owner(nodes: Sequence[ClusterNode]) -> ClusterNode:
    with plain(nodes[0]) as client:
        for start, _end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
            if start == 0:
                return next(n for n in nodes if n.port == primary[1])
    raise AssertionError("no node serves slot 0")


def pick_victim(nodes: Sequence[ClusterNode]) -> tuple[ClusterNode, list[ClusterNode]]:
    """A startup node of the URL that does not serve slot 0 (see the module docstring)."""
    victim = next(n for n in nodes[:2] if n is not slot_zero_owner(nodes))
    return victim, [n for n in nodes if n is not victim]


def keys_by_node(nodes: Sequence[ClusterNode], prefix: str) -> dict[int, str]:
    """One key per node (by port), as the cluster places them."""
    found: dict[int, str] = {}
    for i in itertools.count():
        key = f"{prefix}{i}"
        found.setdefault(owner(nodes, key).port, key)
        if len(found) == len(nodes):
            return found
    raise AssertionError  # unreachable: count() never ends


def in_redis(node: ClusterNode, key: str) -> bytes | None:
    with plain(node) as client:
        value = client.get(key)
    assert value is None or isinstance(value, bytes)
    return value


# -- the two shells, driven alike ------------------------------------------------------------------


@dataclasses.dataclass
class Shell:
    """One store behind blocking calls: ``run`` is the identity for the sync store and runs the
    coroutine on the loop thread for the async one."""

    kind: str
    store: Any
    run: Callable[[Any], Any]

    def set(self, key: str, value: bytes) -> Source:
        source = self.run(self.store.set(key, value))
        assert isinstance(source, Source)
        return source

    def get(self, key: str) -> tuple[Any, Source]:
        result = self.run(self.store.get_result(key))
        return result.value, result.source

    def health(self) -> Any:
        return self.run(self.store.health())

    @property
    def degraded(self) -> bool:
        return bool(self.store.degraded)

    @property
    def pending(self) -> int:
        return int(self.store.core.pending)


def store_kwargs(nodes: Sequence[ClusterNode]) -> dict[str, Any]:
    name = f"node-loss-{next(_names)}"
    settings = load_settings(
        {"REDIS_URL": cluster_url(nodes), "NETWORK_TIMEOUT_SEC": "0.5"}, env_file=None
    )
    return {
        "settings": settings,
        "config": RedisStoreConfig(name=name, probe_interval=PROBE),
        "breaker": CircuitBreaker(name, BREAKER),
    }


@contextlib.contextmanager
def open_shells(nodes: Sequence[ClusterNode]) -> Iterator[list[Shell]]:
    """A sync and an async store on the cluster, closed on exit."""
    with LoopThread(DEADLINE) as loop:

        async def build() -> Any:  # the async client belongs to the loop that runs it
            return async_resilient_redis(**store_kwargs(nodes))

        sync_store = resilient_redis(**store_kwargs(nodes))
        async_store = loop.run(build())
        try:
            yield [
                Shell("sync", sync_store, lambda value: value),
                Shell("async", async_store, loop.run),
            ]
        finally:
            sync_store.close()
            loop.run(async_store.aclose())


def exercise(shell: Shell, keys: dict[int, str]) -> bool:
    """Write and read every key and ask for health: none may raise, health may never fail."""
    for key in keys.values():
        shell.set(key, b"outage")
        assert shell.get(key)[0] == b"outage", (shell.kind, key)
    status = shell.health().status
    assert status is not Status.FAIL, shell.kind
    return True


def reaches_redis(shell: Shell, node: ClusterNode, key: str) -> None:
    """Poll until a write of ``key`` is stored in Redis, on ``node``."""
    attempts = itertools.count()

    def landed() -> bool:
        value = f"after-{next(attempts)}".encode()
        return shell.set(key, value) is Source.REDIS and in_redis(node, key) == value

    wait_for(landed, DEADLINE, f"a {shell.kind} write reaching the node on port {node.port}")


@dataclasses.dataclass
class Outage:
    """Who is down, and each store's keys: ``written`` during the outage, ``kept`` untouched."""

    victim: ClusterNode
    survivors: list[ClusterNode]
    written: dict[str, dict[int, str]]
    kept: dict[str, dict[int, str]]


def node_lost(shell: Shell, outage: Outage) -> None:
    """The node is gone, the others still serve: its keys are answered by the memory tier."""
    written, kept = outage.written[shell.kind], outage.kept[shell.kind]
    lost = written[outage.victim.port]
    assert shell.set(lost, b"during") is Source.MEMORY, shell.kind
    assert shell.get(lost) == (b"during", Source.MEMORY), shell.kind
    # a read of the lost shard: the tier's copy, from before the outage
    assert shell.get(kept[outage.victim.port]) == (b"before", Source.MEMORY), shell.kind
    for node in outage.survivors:
        assert shell.set(written[node.port], b"during") in set(Source)  # no exception
    assert shell.health().status is not Status.FAIL, shell.kind


def cluster_down(shell: Shell, outage: Outage) -> None:
    """Every node answers CLUSTERDOWN: the breaker opens, everything is served from memory."""
    written, kept = outage.written[shell.kind], outage.kept[shell.kind]
    wait_for(
        lambda: exercise(shell, written) and shell.degraded,
        DEADLINE,
        f"the {shell.kind} store to switch to memory",
    )
    assert shell.store.breaker.state is BreakerState.OPEN
    for key in written.values():
        assert shell.set(key, b"outage") is Source.MEMORY
        assert shell.get(key) == (b"outage", Source.MEMORY)
    for node in outage.survivors:  # written before the outage: the tier's copy
        assert shell.get(kept[node.port]) == (b"before", Source.MEMORY)
    assert shell.get(f"{shell.kind}:never-set") == (None, Source.DEFAULT)
    health = shell.health()  # what store_health_check(store) calls
    assert (health.status, health.output) == (Status.WARN, "fallback: memory")
    assert health.details["backend"] == "memory"
    assert health.details["pending_writes"] == len(written)


def healed(shell: Shell, outage: Outage) -> None:
    """The cluster is whole: writes reach Redis again, the outage's writes are settled."""
    written, kept = outage.written[shell.kind], outage.kept[shell.kind]
    reaches_redis(shell, outage.victim, written[outage.victim.port])
    assert not shell.degraded
    wait_for(lambda: shell.pending == 0, DEADLINE, "the outage journal settled")
    assert shell.health().status is Status.PASS
    for node in outage.survivors:
        # invalidate (the default): the outage's local writes are deleted in Redis...
        assert in_redis(node, written[node.port]) is None
        assert shell.get(written[node.port]) == (None, Source.DEFAULT)
        # ...and what was not touched during the outage is read from Redis again
        assert shell.get(kept[node.port]) == (b"before", Source.REDIS)


# -- the tests -------------------------------------------------------------------------------------


def test_a_lost_node_then_clusterdown_is_served_from_memory_and_heals(cluster):
    victim, survivors = pick_victim(cluster)
    with open_shells(cluster) as shells:
        outage = Outage(
            victim,
            survivors,
            written={s.kind: keys_by_node(cluster, f"{s.kind}:w:") for s in shells},
            kept={s.kind: keys_by_node(cluster, f"{s.kind}:k:") for s in shells},
        )
        for shell in shells:
            for keys in (outage.written[shell.kind], outage.kept[shell.kind]):
                for key in keys.values():
                    assert shell.set(key, b"before") is Source.REDIS

        victim.stop()
        for shell in shells:  # before cluster-node-timeout: the other shards still serve
            node_lost(shell, outage)
        wait_for(
            lambda: all(cluster_state(node) == "fail" for node in survivors),
            DEADLINE,
            "CLUSTERDOWN on the surviving nodes",
        )
        for shell in shells:
            cluster_down(shell, outage)

        victim.restart()  # same port, same nodes.conf
        wait_for(lambda: all_ok(cluster), DEADLINE, "cluster_state:ok after the restart")
        for shell in shells:
            healed(shell, outage)


def test_without_full_coverage_the_other_shards_stay_on_redis(cluster):
    victim, survivors = pick_victim(cluster)
    for node in cluster:
        with plain(node) as client:
            client.config_set("cluster-require-full-coverage", "no")
    with open_shells(cluster) as shells:
        keys = {s.kind: keys_by_node(cluster, f"{s.kind}:p:") for s in shells}
        for shell in shells:
            for key in keys[shell.kind].values():
                assert shell.set(key, b"before") is Source.REDIS

        victim.stop()
        wait_for(
            lambda: all(flagged_failed(node, victim) for node in survivors),
            DEADLINE,
            "the surviving nodes to hold the stopped one as failed",
        )
        assert all(cluster_state(node) == "ok" for node in survivors)
        for shell in shells:
            lost = keys[shell.kind][victim.port]
            for round_ in range(3):  # more failures than the breaker's threshold, interleaved
                value = f"during-{round_}".encode()
                assert shell.set(lost, value) is Source.MEMORY, shell.kind
                assert shell.get(lost) == (value, Source.MEMORY), shell.kind
                for node in survivors:
                    key = keys[shell.kind][node.port]
                    assert shell.set(key, value) is Source.REDIS, shell.kind
                    assert shell.get(key) == (value, Source.REDIS), shell.kind
                    assert in_redis(node, key) == value
                assert shell.health().status is not Status.FAIL, shell.kind
            # One lost shard does not switch the whole store to memory.
            assert not shell.degraded, shell.kind
            assert shell.pending == 1  # the lost shard's key, to settle when it is back

        victim.restart()
        wait_for(lambda: all_ok(cluster), DEADLINE, "cluster_state:ok after the restart")
        for shell in shells:
            lost = keys[shell.kind][victim.port]
            wait_for(lambda shell=shell: shell.pending == 0, DEADLINE, "the journal settled")
            reaches_redis(shell, victim, lost)
            assert shell.get(lost)[1] is Source.REDIS


# -- regressions: minimal reproductions of fixed product bugs -------------------------------------


def test_health_and_the_probe_see_a_lost_shard(cluster):
    # Was a product bug: StoreCore.health_flow and StoreCore.probe_flow asked PING, which
    # redis-py's cluster client sends to one node (its default node, the owner of slot 0): any
    # live node answered for the whole cluster. So (1) health passed while a shard was down and
    # its keys were served from memory; (2) once the breaker opened over the dead shard, the
    # probe closed it again while the shard was still down, every recovery timeout (after a
    # CLUSTERDOWN it also closed as soon as the restarted node answered PING, seconds before
    # the cluster served keys). Both now ask every primary for cluster_state:ok. The async
    # store shares StoreCore.
    victim, _ = pick_victim(cluster)
    key = keys_by_node(cluster, "probe:")[victim.port]
    with resilient_redis(**store_kwargs(cluster)) as store:
        assert store.set(key, b"before") is Source.REDIS
        victim.stop()
        assert store.get_result(key).source is Source.MEMORY  # the fallback serves the shard
        health = store.health()
        assert health.status is Status.WARN, (health.status, health.output)  # (1)

        # Reads only: a journaled write would make the probe's reconciliation fail by chance.
        wait_for(
            lambda: store.get(key) == b"before" and store.degraded,
            DEADLINE,
            "the breaker to open over the lost shard",
        )
        until = time.monotonic() + 5 * RECOVERY  # room for the probe to close it twice over
        while time.monotonic() < until:
            assert store.degraded, "the breaker closed while its shard is still down"  # (2)
            time.sleep(PROBE)


def test_aclose_after_a_lost_node_closes_every_connection(cluster):
    # Was a product bug (redis-py 8.1): after a ConnectionError the async RedisCluster marks
    # itself for re-initialisation, and its aclose() does nothing while it is so marked:
    # AsyncResilientRedis.aclose() left every connection to the surviving nodes open.
    victim, survivors = pick_victim(cluster)
    keys = keys_by_node(cluster, "close:")
    baseline = [connections(node) for node in survivors]

    async def scenario() -> Any:
        store = async_resilient_redis(**store_kwargs(cluster))
        for key in keys.values():
            assert await store.set(key, b"before") is Source.REDIS
        await asyncio.to_thread(victim.stop)
        assert await store.set(keys[victim.port], b"during") is Source.MEMORY
        await store.aclose()
        return store

    with LoopThread(DEADLINE) as loop:
        store = loop.run(scenario())
        after = [connections(node) for node in survivors]
        try:
            # (<=: a connection of an earlier test may be collected meanwhile)
            assert all(map(int.__le__, after, baseline)), (after, baseline)
        finally:
            # Should this regress: close what aclose() left, so that no ResourceWarning
            # reaches a later test (closing closed nodes again is a no-op).
            manager = store.client.nodes_manager
            loop.run(manager.aclose())
            loop.run(manager.aclose("startup_nodes"))
