"""The reference store under faults: real redis-servers, CP and AP instances as real processes.

* a partition (SIGSTOP of a Redis node) during a stream of writes: CP refuses, and never
  acknowledges a write that is not on both nodes; AP accepts every write, says stale, and both
  nodes converge after the heal;
* read-your-writes across two instances, through a proxy that cuts one instance off its peer.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest

from examples.kvstore.nodes import open_node

from kv_instances import kv_instance
from servers import CommandServer, RedisServer, find_redis, free_port, missing, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MAX_STALENESS_MS = 800


def instance(
    tmp_path: Path, name: str, mode: str, local: str, peer: str, **extra: str
) -> CommandServer:
    return kv_instance(
        tmp_path, name, mode, local, peer, MAX_STALENESS_MS=str(MAX_STALENESS_MS), **extra
    )


@pytest.fixture
def redis_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    binary = find_redis()
    if binary is None:
        missing("redis-server")
    servers = (RedisServer(binary), RedisServer(binary))  # type: ignore[arg-type]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            if server.running:
                server.resume()
            server.close()


@contextlib.contextmanager
def serving(*servers: CommandServer) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()
            server.close()


def node_items(url: str, prefix: str) -> dict[str, tuple[str | None, int]]:
    node = open_node(url, name="check", timeout=2.0)
    try:
        return {
            key: (record.value, record.version)
            for key, record in node.items()
            if key.startswith(prefix)
        }
    finally:
        node.close()


def live_keys(*urls: str) -> set[str]:
    """Keys holding a value (not deleted) on any of the nodes."""
    keys: set[str] = set()
    for url in urls:
        keys |= {key for key, (value, _) in node_items(url, "").items() if value is not None}
    return keys


class Loop(abc.ABC):
    """A thread that calls :meth:`step` with one HTTP client until the ``with`` block ends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self.step(client)
                except httpx.HTTPError as exc:  # a refusal must still be an answer
                    self.errors.append(repr(exc))

    @abc.abstractmethod
    def step(self, client: httpx.Client) -> None:
        """One request, and what its answer says."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class WriteStream(Loop):
    """Writes distinct keys, or ``prefix`` again and again (``same_key``); records which were
    acknowledged (for one key, its last acknowledged value) and which refused."""

    def __init__(self, url: str, prefix: str, *, same_key: bool = False) -> None:
        super().__init__(url)
        self.prefix = prefix
        self.same_key = same_key
        self.acked: dict[str, str] = {}
        self.refused: dict[str, int] = {}
        self.count = 0

    def step(self, client: httpx.Client) -> None:
        key = self.prefix if self.same_key else f"{self.prefix}{self.count}"
        value = f"v{self.count}"
        self.count += 1
        response = client.post(f"/write/{key}/{value}")
        if response.status_code == 200:
            self.acked[key] = value
        elif response.status_code == 503 and response.json().get("reason"):
            self.refused[key] = response.status_code
        else:
            self.errors.append(f"{key}: {response.status_code} {response.text[:200]}")

    def wait_for_writes(self, more: int) -> None:
        target = self.count + more
        wait_for(lambda: self.count >= target, 30, f"{more} more writes")


class ReadStream(Loop):
    """Reads one key again and again; keeps the values served (200s)."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url)
        self.key = key
        self.values: set[str] = set()

    def step(self, client: httpx.Client) -> None:
        response = client.get(f"/read/{self.key}")
        if response.status_code == 200:
            self.values.add(response.json()["value"])
        elif response.status_code not in (404, 503):
            self.errors.append(f"{response.status_code} {response.text[:200]}")


def test_cp_partition_refuses_writes_and_never_acknowledges_one_not_on_both_nodes(
    tmp_path, redis_pair
):
    node_a, node_b = redis_pair
    cp = instance(tmp_path, "cp", "cp", node_a.url, node_b.url)
    with serving(cp):
        # Beside the stream of distinct keys: one key written again and again, and read.
        with (
            WriteStream(cp.url, "cp-") as stream,
            WriteStream(cp.url, "hot", same_key=True) as hot,
            ReadStream(cp.url, "hot") as reader,
        ):
            stream.wait_for_writes(20)
            # The reader's threads race the writers' on a busy machine: the hot key may not
            # exist yet (404), and during the partition CP reads are refused (503).
            wait_for(lambda: reader.values, 30, "a read of the hot key before the partition")
            node_b.pause()  # the peer is partitioned away
            try:
                stream.wait_for_writes(30)
                during = len(stream.refused)
            finally:
                node_b.resume()
            # healed: the breaker's trial succeeds and writes are acknowledged again
            acked_before_heal = len(stream.acked)
            wait_for(lambda: len(stream.acked) > acked_before_heal + 20, 30, "writes after heal")
        assert not stream.errors, stream.errors[:5]
        assert not hot.errors, hot.errors[:5]
        assert not reader.errors, reader.errors[:5]
        assert during > 0, "no write was refused during the partition"
        # The hot key ends at its last acknowledged value on both nodes: every write refused
        # after it (rolled back, or undone by its intent once due) is gone.
        last = hot.acked["hot"]
        wait_for(
            lambda: (
                node_items(node_a.url, "hot").get("hot", (None,))[0] == last
                and node_items(node_b.url, "hot").get("hot", (None,))[0] == last
            ),
            30,
            f"both nodes at the last acknowledged value {last}",
        )
        attempted = {f"v{i}" for i in range(hot.count)}
        assert reader.values, "the reader never got an answer"
        assert reader.values <= attempted
        # Every acknowledged write is on both nodes.
        on_a, on_b = node_items(node_a.url, "cp-"), node_items(node_b.url, "cp-")
        for key, value in stream.acked.items():
            assert on_a[key][0] == value, key
            assert on_b[key][0] == value, key
        # Refused writes were rolled back here, and undone on the peer (which may have taken
        # one before its reply was lost) by the compensations the sync replays.
        wait_for(
            lambda: not set(stream.refused) & live_keys(node_a.url, node_b.url),
            30,
            "refused writes gone from both nodes",
        )
    cp2 = instance(tmp_path, "cp2", "cp", node_a.url, node_b.url)
    with serving(cp2), httpx.Client(base_url=cp2.url, timeout=10) as client:
        for key, value in list(stream.acked.items())[::7]:
            assert client.get(f"/read/{key}").json()["value"] == value


def test_ap_partition_accepts_every_write_and_converges_after_heal(tmp_path, redis_pair):
    node_a, node_b = redis_pair
    ap = instance(tmp_path, "ap", "ap", node_b.url, node_a.url)  # local B, peer A
    with serving(ap), httpx.Client(base_url=ap.url, timeout=10) as client:
        with WriteStream(ap.url, "ap-") as stream:
            stream.wait_for_writes(20)
            node_a.pause()
            try:
                stream.wait_for_writes(30)
                # Staleness rises past the bound while the peer cannot be reached.
                wait_for(
                    lambda: client.get("/read/ap-0").json()["stale"] is True,
                    30,
                    "reads marked stale during the partition",
                )
                stale = client.get("/read/ap-0")
                assert stale.headers["x-data-stale"] == "true"
                assert stale.json()["staleness_ms"] > MAX_STALENESS_MS
            finally:
                node_a.resume()
            stream.wait_for_writes(20)
        assert not stream.errors, stream.errors[:5]
        assert not stream.refused, f"AP refused {len(stream.refused)} writes"
        # Both nodes converge, to the acknowledged values.
        wait_for(
            lambda: node_items(node_a.url, "ap-") == node_items(node_b.url, "ap-"),
            30,
            "nodes converged after the heal",
        )
        on_a = node_items(node_a.url, "ap-")
        assert {key: value for key, (value, _) in on_a.items()} == stream.acked
        # ... and staleness falls back under the bound.
        wait_for(
            lambda: client.get("/read/ap-0").json()["stale"] is False,
            30,
            "staleness back under the bound",
        )
        # The metrics dashboards query, summed over the two workers.
        text = client.get("/metrics").text
        writes = sample(text, 'app_requests_total{mode="ap",operation="write",status="200"}')
        assert writes == len(stream.acked)
        assert sample(text, 'db_connection_failures_total{node="peer"}') > 0
        # Each worker's breaker closes again at its first trial call after the heal.
        wait_for(
            lambda: (
                sample(client.get("/metrics").text, 'circuit_breaker_state{name="kv-peer"}') == 0
            ),
            30,
            "the peer's breaker closed in every worker",
        )
        assert 'data_staleness_ms{node="local"}' in text
        assert "kv_replication_queue_length" in text


def sample(exposition: str, series: str) -> float:
    """The value of one series in a Prometheus text exposition."""
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the exposition")


class CutProxy:
    """A TCP proxy to ``target`` on a free port; :meth:`cut` makes it a black hole."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.open = threading.Event()
        self.open.set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                # While cut, bytes are swallowed: the peer looks hung, as in a partition.
                if self.open.is_set():
                    dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def test_read_your_writes_holds_across_instances_with_the_token(tmp_path, redis_pair):
    node_a, node_b = redis_pair
    proxy = CutProxy(node_a.port)
    try:
        # writer: local B, peer A through the proxy; reader: local A, peer B
        writer = instance(tmp_path, "w", "ap", node_b.url, f"redis://127.0.0.1:{proxy.port}/0")
        # The reader's own sync would pull the writer's hint over within 250 ms: one worker,
        # whose first sync runs at its first request, and no other for ten minutes.
        reader = instance(
            tmp_path,
            "r",
            "ap",
            node_a.url,
            node_b.url,
            WEB_WORKERS="1",
            KV_SYNC_INTERVAL_MS="600000",
        )
        with serving(writer, reader), httpx.Client(timeout=10) as client:
            assert client.post(f"{writer.url}/write/ryw/old").status_code == 200
            wait_for(
                lambda: client.get(f"{reader.url}/read/ryw").json().get("value") == "old",
                30,
                "the first value replicated",
            )
            # The first sync pass started with the reader's first request and may still run: a
            # pass that ends after the cut would deliver the writer's hint. Each pass publishes
            # the staleness gauge as its last step; after this one, none for ten minutes.
            first_pass = 'data_staleness_ms{node="local"}'
            wait_for(
                lambda: first_pass in client.get(f"{reader.url}/metrics").text,
                30,
                "the reader's first sync pass",
            )
            proxy.cut()
            written = client.post(f"{writer.url}/write/ryw/new")
            assert written.status_code == 200
            assert written.json()["replicated"] is False
            token = written.headers["x-kv-token"]
            # The client keeps the token's cookie (for 127.0.0.1, whatever the port): drop it.
            client.cookies.clear()
            # Without the token the reader serves what its node has; with it, the new value
            # from the node that has it.
            assert client.get(f"{reader.url}/read/ryw").json()["value"] == "old"
            with_token = client.get(f"{reader.url}/read/ryw", headers={"X-KV-Token": token})
            assert with_token.status_code == 200, with_token.text
            assert with_token.json()["value"] == "new"
            assert with_token.json()["node"] == "peer"
            # Cookie form, as a browser would send it.
            with_cookie = client.get(
                f"{reader.url}/read/ryw", headers={"Cookie": f"kv_token={token}"}
            )
            assert with_cookie.json()["value"] == "new"
            # When no reachable node has the version, it says so instead of serving old data.
            node_b.pause()
            try:
                refused = client.get(f"{reader.url}/read/ryw", headers={"X-KV-Token": token})
                assert refused.status_code == 503
                assert refused.json()["reason"] == "version_not_available"
                assert "retry-after" in refused.headers
            finally:
                node_b.resume()
            proxy.heal()
    finally:
        proxy.close()
