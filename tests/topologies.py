"""Real Redis topologies for tests: a master with a Sentinel, and a three-node Cluster.

Shared by the store and the rate-limit topology tests; each helper starts real processes on
free loopback ports and stops them (by PID) on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import redis

from servers import RedisServer, find_redis, free_port, missing, wait_for


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` watching one master as ``mymaster`` (quorum 1)."""

    name = "redis-sentinel"

    def __init__(self, binary: str, master_port: int) -> None:
        super().__init__(binary)
        self.master_port = master_port

    def argv(self) -> Sequence[str]:
        conf = Path(self.dir) / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            # a failover (and the old master's demotion) within seconds, not minutes
            "sentinel failover-timeout mymaster 3000\n"
        )
        return [self.binary, str(conf), "--sentinel"]


class ReplicaServer(RedisServer):
    """A redis-server replicating ``master_port``."""

    name = "redis-replica"

    def __init__(self, binary: str, master_port: int) -> None:
        super().__init__(binary)
        self.master_port = master_port

    def argv(self) -> Sequence[str]:
        return [*super().argv(), "--replicaof", "127.0.0.1", str(self.master_port)]


class ClusterNode(RedisServer):
    """A redis-server with cluster mode on (its nodes file in its own directory)."""

    name = "redis-cluster-node"

    def __init__(self, binary: str) -> None:
        super().__init__(binary)
        # A free bus port of its own: the default, port + 10000, may be taken or above 65535.
        self.bus_port = free_port()

    def choose_ports(self) -> None:
        super().choose_ports()
        self.bus_port = free_port()

    def argv(self) -> Sequence[str]:
        return [
            *super().argv(),
            "--cluster-enabled", "yes",
            "--cluster-port", str(self.bus_port),
            "--cluster-config-file", f"{self.dir}/nodes.conf",
            "--cluster-node-timeout", "2000",
        ]  # fmt: skip


def plain(server: RedisServer) -> redis.Redis:
    """A bare client whose connect sends nothing the server counts (RESP2, no CLIENT SETINFO)."""
    return redis.Redis(port=server.port, socket_timeout=2, protocol=2, driver_info=None)


def binaries() -> tuple[str, str]:
    """redis-server and redis-cli, or a failure (CI) / skip (elsewhere) when missing."""
    server, cli = find_redis(), shutil.which("redis-cli")
    if server is None or cli is None:
        missing("redis-server and redis-cli")
    return server, cli  # type: ignore[return-value]


@contextlib.contextmanager
def sentinel_topology() -> Iterator[tuple[RedisServer, SentinelServer]]:
    """A master and a Sentinel that serves its address."""
    binary, _ = binaries()
    master = RedisServer(binary)
    sentinel = SentinelServer(binary, master.port)
    try:
        master.start()
        sentinel.start()
        yield master, sentinel
    finally:
        sentinel.close()
        master.close()


@contextlib.contextmanager
def failover_topology() -> Iterator[tuple[RedisServer, ReplicaServer, SentinelServer]]:
    """A master, its replica, and a Sentinel that knows both (so it can fail over)."""
    binary, _ = binaries()
    master = RedisServer(binary)
    master.start()
    replica = ReplicaServer(binary, master.port)
    sentinel = SentinelServer(binary, master.port)
    try:
        replica.start()

        def replicating() -> bool:
            with plain(replica) as client:
                return client.info("replication").get("master_link_status") == "up"

        wait_for(replicating, 60, "the replica's link to the master")
        sentinel.start()  # its first INFO of the master lists the replica

        def promotable() -> bool:
            """Seen by the Sentinel, connected to it, and linked to the master."""
            with plain(sentinel) as client:
                replicas = client.execute_command("SENTINEL REPLICAS mymaster")
            for flat in replicas:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                if fields.get(b"flags") == b"slave" and fields.get(b"master-link-status") == b"ok":
                    return True
            return False

        wait_for(promotable, 60, "the Sentinel to see a promotable replica")
        yield master, replica, sentinel
    finally:
        sentinel.close()
        replica.close()
        master.close()


@contextlib.contextmanager
def cluster_topology() -> Iterator[list[ClusterNode]]:
    """Three masters sharing the 16384 slots, ``cluster_state:ok`` on each."""
    binary, cli = binaries()
    nodes = [ClusterNode(binary) for _ in range(3)]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def ok(node: ClusterNode) -> bool:
            with plain(node) as client:
                return client.execute_command("CLUSTER INFO").get("cluster_state") == "ok"

        wait_for(lambda: all(ok(node) for node in nodes), 60, "cluster_state:ok")
        yield nodes
    finally:
        for node in nodes:
            node.close()


def cluster_url(nodes: Sequence[ClusterNode]) -> str:
    """``redis+cluster://`` naming two of the nodes (the client discovers the third)."""
    return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes[:2])


def sentinel_url(sentinel: RedisServer) -> str:
    """``redis+sentinel://`` for ``mymaster``."""
    return f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster"


def slot_of(nodes: Sequence[RedisServer], key: str) -> int:
    """The cluster slot of ``key``, asked of the cluster."""
    with plain(nodes[0]) as client:
        return int(client.execute_command("CLUSTER KEYSLOT", key))


def owner(nodes: Sequence[ClusterNode], key: str) -> ClusterNode:
    """The node whose slots hold ``key`` (asked of the cluster, not computed here)."""
    slot = slot_of(nodes, key)
    with plain(nodes[0]) as client:
        for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return next(n for n in nodes if n.port == primary[1])
    raise AssertionError(f"no node serves slot {slot}")


def cluster_state(node: ClusterNode) -> str:
    """``cluster_state`` as ``node`` sees it (``ok`` or ``fail``)."""
    with plain(node) as client:
        return str(client.execute_command("CLUSTER INFO")["cluster_state"])


def all_ok(nodes: Sequence[ClusterNode]) -> bool:
    """True when every node says ``cluster_state:ok``."""
    return all(cluster_state(node) == "ok" for node in nodes)


def heal(nodes: Sequence[ClusterNode], deadline: float) -> None:
    """Make ``nodes`` whole again: every node up, full coverage required, state ok everywhere."""
    for node in nodes:
        if not node.running:
            node.restart()  # same port, same nodes.conf: it rejoins with its slots
    for node in nodes:
        with plain(node) as client:
            client.config_set("cluster-require-full-coverage", "yes")
    wait_for(lambda: all_ok(nodes), deadline, "cluster_state:ok on every node")


def connections(node: RedisServer) -> int:
    """Client connections ``node`` holds, the one asking aside."""
    with plain(node) as client:
        return len(client.client_list()) - 1


class LoopThread:
    """An event loop in a thread of its own: an async shell's background task runs there."""

    def __init__(self, timeout: float) -> None:
        """Start the loop; every :meth:`run` fails after ``timeout`` seconds instead of hanging."""
        self.loop = asyncio.new_event_loop()
        self._timeout = timeout
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop")
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self._timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
