"""The replicated store: two nodes, CP or AP, through one breaker per node.

CP (consistency when partitioned):

* a write is acknowledged only when both nodes hold it. The local node takes it together with
  its *intent*: the compensation that would undo it (a hint, stored in the same transaction).
  Then the peer takes it, and the writer claims (drops) the intent and acknowledges. When the
  peer fails, the local write is undone at once, and the intent stays: once it is older than
  ``intent_grace`` (longer than any write in flight), the background sync claims it and undoes
  the write wherever it is still held, so a write whose reply was lost, or whose writer died
  half-way, never stays. Claims are atomic (one of the writer and the sync wins), so a write is
  either acknowledged or undone, never both. Undoing is a compare-and-set on the whole record;
  a write that finds a newer record (another instance's) is retried above it, never
  acknowledged unstored. While the peer's breaker is open, nothing is written at all;
* a read needs both nodes and no intent for its key on either (else 503, retry): a key being
  written or undone is not served. The newer of the two records is served, and the other node
  repaired by compare-and-set (a repair never revives what was undone meanwhile).

AP (availability when partitioned):

* a write is acknowledged when the local node holds it; in the same transaction a hint (the
  write owed to the peer) is queued in the local node. The peer is written at once and the
  hint dropped; when that fails, the hint stays and the background sync replays it, in order,
  when the peer returns. Last writer wins by version, so a replay never undoes a newer write;
* a read always answers (from the peer when the local node is down), with its staleness: the
  milliseconds since the sync last delivered every hint it found, both ways, with the peer
  reachable. Past ``max_staleness_ms`` it says stale.

Read-your-writes: a read may ask for ``at_least`` a version of its key (from the token of an
earlier write); it is served from a node that holds at least that version, or refused.

Known window (CP): a read between a write reaching both nodes and its writer's claim sees the
key pending and is refused; but a read racing a repair with an undo can, rarely, serve a write
that is then undone (a dirty read; the nodes still end without it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

from examples.kvstore import metrics
from examples.kvstore.records import Hint, Node, NodeUnavailable, PutResult, Record
from examples.kvstore.versions import VersionClock
from fender.errors import CallNotPermitted
from fender.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    default_registry,
)

__all__ = [
    "NODE_BREAKER",
    "REASONS",
    "KvStore",
    "Mode",
    "ReadResult",
    "Unavailable",
    "WriteResult",
]

Mode = Literal["cp", "ap"]
T = TypeVar("T")

NODE_BREAKER: Final = BreakerConfig(
    failure_threshold=3,
    failure_rate_threshold=50.0,
    minimum_number_of_calls=10,
    sliding_window_size=10,
    recovery_timeout=2.0,
    permitted_calls_in_half_open=1,
    success_threshold=1,
    half_open_slot_timeout=5.0,
    record_exceptions=(NodeUnavailable,),
)
"""How a node's breaker trips (three failures in a row, or half the calls of 10 s) and retries
(one trial call two seconds later): a partition costs a few timeouts, then none."""

REPLAY_BATCH: Final = 200
WRITE_ATTEMPTS: Final = 3
"""Tries of a write that keeps finding a newer record (another instance's, same key)."""
_REFUSING: Final = frozenset({BreakerState.OPEN, BreakerState.FORCED_OPEN})
_log = logging.getLogger("examples.kvstore")


REASONS: Final = (
    "local_unreachable",
    "peer_unreachable",
    "no_node_reachable",
    "not_current",
    "version_not_available",
    "write_in_progress",
    "write_undone",
    "write_conflict",
)
"""Every ``reason`` an :class:`Unavailable` gives (the OpenAPI document lists them)."""


class Unavailable(Exception):  # noqa: N818  (the HTTP 503 it becomes)
    """The store cannot do this now (HTTP 503); ``reason`` is a stable code for clients."""

    def __init__(self, reason: str, detail: str, retry_after: float = 1.0) -> None:
        if reason not in REASONS:  # a code clients cannot look up is a bug, found by any test
            raise ValueError(f"undocumented reason {reason!r}: add it to REASONS")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True, slots=True)
class WriteResult:
    """An acknowledged write: its version, and whether the peer holds it already."""

    key: str
    version: int
    replicated: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReadResult:
    """A read: the record (None when the key was never written), where it came from, how stale."""

    key: str
    record: Record | None
    node: str
    staleness_ms: int
    stale: bool

    @property
    def found(self) -> bool:
        """True when the key holds a value (not missing, not deleted)."""
        return self.record is not None and not self.record.deleted


class KvStore:
    """Two nodes and a mode; thread-safe. :meth:`start` runs the background sync."""

    def __init__(
        self,
        mode: Mode,
        local: Node,
        peer: Node,
        *,
        max_staleness_ms: int,
        breakers: BreakerRegistry | None = None,
        breaker_config: BreakerConfig = NODE_BREAKER,
        versions: VersionClock | None = None,
        sync_interval: float = 0.25,
        intent_grace: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        """Build the store; ``breakers`` defaults to fender's registry (metrics, /status)."""
        if mode not in ("cp", "ap"):
            raise ValueError(f"KV_MODE must be cp or ap, not {mode!r}")
        self.mode: Mode = mode
        self.local = local
        self.peer = peer
        self.max_staleness_ms = max_staleness_ms
        registry = default_registry if breakers is None else breakers
        self.breakers: dict[str, CircuitBreaker] = {
            node.name: registry.get_or_create(f"kv-{node.name}", breaker_config)
            for node in (local, peer)
        }
        self.versions = versions or VersionClock()
        self.sync_interval = sync_interval
        self.intent_grace_ms = round(intent_grace * 1000)
        self._monotonic = monotonic
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        # Before the first sync, staleness counts from the store's start.
        started = monotonic()
        self._synced_at = {"local": started, "peer": started}
        self._queue_length = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._sync_lock = threading.Lock()

    # --- node calls through the breakers --------------------------------------------------------

    def _call(self, node: Node, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args)`` on ``node`` through its breaker; any failure is NodeUnavailable."""
        try:
            return self.breakers[node.name].call(fn, *args, **kwargs)
        except CallNotPermitted as exc:
            metrics.CONNECTION_FAILURES.labels(node.name).inc()
            raise NodeUnavailable(
                node.name, f"circuit open (retry in {exc.retry_after:.1f} s)"
            ) from exc
        except NodeUnavailable:
            metrics.CONNECTION_FAILURES.labels(node.name).inc()
            raise

    def reachable(self, node: Node) -> bool:
        """False while the node's breaker is open and not yet due for a trial call."""
        breaker = self.breakers[node.name]
        return breaker.state not in _REFUSING or breaker.retry_after() <= 0

    # --- writes ---------------------------------------------------------------------------------

    def write(self, key: str, value: str) -> WriteResult:
        """Store ``value`` under ``key`` (see the module for what acknowledges it)."""
        return self._write(key, value)

    def delete(self, key: str) -> WriteResult:
        """Delete ``key``: a tombstone written like a value, so that replicas agree."""
        return self._write(key, None)

    def _write(self, key: str, value: str | None) -> WriteResult:
        if self.mode == "cp":
            return self._write_cp(key, value)
        return self._write_ap(key, value)

    def _write_ap(self, key: str, value: str | None) -> WriteResult:
        for _ in range(WRITE_ATTEMPTS):
            record, stored = self._put_local(key, value, hint=True)
            if stored.applied:
                break
            # A newer record holds the key (another instance's clock is ahead): write above it.
            self._observe(stored)
            self._drop(self.local, stored.hint_id)
        else:
            raise _conflict(key)
        replicated = False
        if self.reachable(self.peer):
            try:
                self._call(self.peer, self.peer.put, key, record)
                replicated = True
            except NodeUnavailable:
                self._queue_length += 1  # until the sync counts the queue
                self._wake.set()  # the sync replays the hint when the peer returns
        if replicated:
            # If this fails the hint is replayed later: harmless, last writer wins.
            self._drop(self.local, stored.hint_id)
        return WriteResult(key, record.version, replicated)

    def _write_cp(self, key: str, value: str | None) -> WriteResult:
        for _ in range(WRITE_ATTEMPTS):
            if not self.reachable(self.peer):
                raise Unavailable(
                    "peer_unreachable",
                    "the peer node is unreachable (circuit open): CP mode refuses writes it "
                    "cannot store on both nodes",
                    retry_after=self._retry_after(self.peer),
                )
            written = self._try_cp(key, value)
            if written is not None:
                return written
        raise _conflict(key)

    def _try_cp(self, key: str, value: str | None) -> WriteResult | None:
        """One try of a CP write: acknowledged, or None to try again above a newer record."""
        record, stored = self._put_local(key, value, intent=True)
        if stored.busy:
            raise _in_progress(key)
        self._observe(stored)
        if not stored.applied:  # a newer record: never acknowledge a write not stored
            self._drop(self.local, stored.hint_id)
            return None
        try:
            # With its own intent there: a put that lands late brings the undo of itself.
            on_peer = self._call(
                self.peer, self.peer.put, key, record, intent=True, created_ms=self._wall_ms()
            )
        except NodeUnavailable as exc:
            self._take_back(key, record, stored)
            raise Unavailable(
                "peer_unreachable",
                f"the peer node did not take the write, which is rolled back: {exc}",
                retry_after=self._retry_after(self.peer),
            ) from exc
        if not on_peer.applied:
            # Busy there, or a newer (or the very same) record: nothing of ours is on the
            # peer, so take it back here.
            self._drop(self.peer, on_peer.hint_id)
            if on_peer.previous is not None:
                self.versions.observe(on_peer.previous.version)
            self._take_back(key, record, stored)
            if on_peer.busy:
                raise _in_progress(key)
            return None
        if self._drop(self.peer, on_peer.hint_id) and self._drop(self.local, stored.hint_id):
            return WriteResult(key, record.version, replicated=True)
        # A sync claimed an intent first (this write outlived its grace), or a node failed: not
        # acknowledged. Both nodes may have shown it, so it is undone forward, to the newer of
        # their previous records; if the peer cannot be undone now, the local intent stays and
        # undoes both nodes when due.
        undo = undoing(record, _newest(stored.previous, on_peer.previous))
        peer_undone = self._set(self.peer, key, undo, expect=record)
        self._set(self.local, key, undo, expect=record)
        if peer_undone:
            self._drop(self.local, stored.hint_id)
        self._wake.set()
        raise Unavailable(
            "write_undone", "the write took longer than its grace period and is rolled back"
        )

    def _put_local(
        self, key: str, value: str | None, *, hint: bool = False, intent: bool = False
    ) -> tuple[Record, PutResult]:
        """A new version of ``value`` on the local node, with its hint or intent."""
        record = Record(value, self.versions.next())
        try:
            stored = self._call(
                self.local,
                self.local.put,
                key,
                record,
                hint=hint,
                intent=intent,
                created_ms=self._wall_ms(),
            )
        except NodeUnavailable as exc:
            raise Unavailable("local_unreachable", f"the local node is unreachable: {exc}") from exc
        return record, stored

    def _take_back(self, key: str, record: Record, stored: PutResult) -> None:
        """Put back exactly what the local node held, while this write's intent is still held
        there (no read serves a pending key), then drop the intent. If the local node fails,
        the intent undoes it when due."""
        if self._set(self.local, key, stored.previous, expect=record):
            self._drop(self.local, stored.hint_id)
        else:
            self._wake.set()

    def _set(self, node: Node, key: str, new: Record | None, *, expect: Record | None) -> bool:
        """Compare-and-set ``new`` on ``node``; True unless the node failed (a mismatch means
        the record moved on: nothing left to undo or repair)."""
        try:
            self._call(node, node.restore, key, new, expect=expect)
        except NodeUnavailable:
            return False
        return True

    def _drop(self, node: Node, hint_id: int | None) -> bool:
        """Claim (drop) a hint; False when another caller had it, or the node failed."""
        if hint_id is None:
            return False
        try:
            return self._call(node, node.drop_hint, hint_id)
        except NodeUnavailable:
            return False

    def _observe(self, stored: PutResult) -> None:
        if stored.previous is not None:
            self.versions.observe(stored.previous.version)

    # --- reads ----------------------------------------------------------------------------------

    def read(self, key: str, *, at_least: int | None = None) -> ReadResult:
        """The key's record, from a node that holds at least ``at_least`` of it."""
        if self.mode == "cp":
            return self._read_cp(key, at_least)
        return self._read_ap(key, at_least)

    def _read_ap(self, key: str, at_least: int | None) -> ReadResult:
        staleness = self.staleness_ms()
        local: Record | None = None
        try:
            local = self._call(self.local, self.local.get, key)
        except NodeUnavailable:
            pass
        else:
            if _holds(local, at_least):
                return self._result(key, local, "local", staleness)
        # The local node is down, or behind the version asked for: try the peer.
        try:
            remote = self._call(self.peer, self.peer.get, key)
        except NodeUnavailable as exc:
            if at_least is not None:
                raise Unavailable(
                    "version_not_available",
                    f"no reachable node holds version {at_least} of {key!r} yet",
                ) from exc
            raise Unavailable("no_node_reachable", f"neither node answers: {exc}") from exc
        if not _holds(remote, at_least):
            raise Unavailable(
                "version_not_available", f"no node holds version {at_least} of {key!r} yet"
            )
        return self._result(key, remote, "peer", staleness)

    def _read_cp(self, key: str, at_least: int | None) -> ReadResult:
        if not self.reachable(self.peer):
            raise Unavailable(
                "peer_unreachable",
                "the peer node is unreachable: CP mode cannot tell that the local node is current",
                retry_after=self._retry_after(self.peer),
            )
        try:
            local, local_pending = self._call(self.local, self.local.inspect, key)
            remote, remote_pending = self._call(self.peer, self.peer.inspect, key)
        except NodeUnavailable as exc:
            raise Unavailable(
                "not_current", f"a node did not answer, so the read may not be current: {exc}"
            ) from exc
        if local_pending or remote_pending:
            raise Unavailable(
                "not_current",
                f"a write of {key!r} is in flight or being rolled back: retry",
            )
        if _order(local) >= _order(remote):
            newest, node, behind, seen = local, "local", self.peer, remote
        else:
            newest, node, behind, seen = remote, "peer", self.local, local
        if newest != seen:
            # No intent for the key on either node: the difference is not a CP write in flight
            # (an AP instance's replication, a restored node). Compare-and-set, so a repair
            # racing an undo does nothing.
            self._set(behind, key, newest, expect=seen)
        if not _holds(newest, at_least):
            raise Unavailable(
                "version_not_available", f"no node holds version {at_least} of {key!r} yet"
            )
        return self._result(key, newest, node, 0)

    def _result(self, key: str, record: Record | None, node: str, staleness: int) -> ReadResult:
        if record is not None:
            self.versions.observe(record.version)
        stale = self.mode == "ap" and staleness > self.max_staleness_ms
        return ReadResult(key, record, node, staleness, stale)

    # --- staleness and the background sync ------------------------------------------------------

    def staleness_ms(self, node: str = "local") -> int:
        """Milliseconds since ``node`` was last known in sync with the other node."""
        return max(0, round((self._monotonic() - self._synced_at[node]) * 1000))

    def queue_length(self) -> int:
        """Hints queued for the peer, as of the last sync (or write)."""
        return self._queue_length

    def sync_once(self) -> bool:
        """Deliver the due hints both ways; True when every one was delivered.

        Hints owed to the local node (queued in the peer by another instance whose peer is our
        local node) are delivered too, so that the nodes converge while that instance is down.
        Hints queued after a pass began are the next pass's (a write replicates its own).
        """
        with self._sync_lock:
            outbound = self._replay(self.local, self.peer)
            inbound = outbound and self._replay(self.peer, self.local)
            now = self._monotonic()
            if outbound:
                self._synced_at["peer"] = now
            if inbound:
                self._synced_at["local"] = now
            with contextlib.suppress(NodeUnavailable):
                self._queue_length = self._call(self.local, self.local.hint_count)
            self._publish()
            return inbound

    def _replay(self, source: Node, target: Node) -> bool:
        """Deliver ``source``'s due hints to ``target``, in id order; False when a node failed."""
        after = 0
        try:
            while True:
                batch = self._call(source, source.hints, REPLAY_BATCH, after=after)
                for hint in batch:
                    self._deliver(source, target, hint)
                    after = hint.id
                if len(batch) < REPLAY_BATCH:
                    return True
        except NodeUnavailable:
            return False

    def _deliver(self, source: Node, target: Node, hint: Hint) -> None:
        if not hint.compensation:
            if hint.record is not None:
                self._call(target, target.put, hint.key, hint.record)
            self._call(source, source.drop_hint, hint.id)
            return
        if self._wall_ms() - hint.created_ms < self.intent_grace_ms:
            return  # a CP write in flight: its writer claims this intent, or it falls due
        # Marked first, so that its writer can no longer claim it; removed only once the write
        # is undone: a sync that dies or fails half-way leaves it marked for the next pass.
        if not self._call(source, source.claim_hint, hint.id):
            return  # its writer claimed it
        undone = hint.expect
        if undone is None:  # a compensation always names the record it undoes
            return
        undo = undoing(undone, hint.record)
        for node in (source, target):  # compare-and-set: only where it is held exactly
            self._call(node, node.restore, hint.key, undo, expect=undone)
        self._call(source, source.drop_hint, hint.id, force=True)

    def _publish(self) -> None:
        metrics.QUEUE_LENGTH.set(self._queue_length)
        for node in ("local", "peer"):
            metrics.STALENESS.labels(node).set(self.staleness_ms(node))

    def _retry_after(self, node: Node) -> float:
        return max(1.0, self.breakers[node.name].retry_after())

    def start(self) -> None:
        """Run the sync in a daemon thread of this process (again after a fork)."""
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._stop.clear()
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="kv-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception:  # the sync must outlive any surprise; it says so
                _log.exception("kv_sync_failed")
            self._wake.wait(self.sync_interval)
            self._wake.clear()

    def stop(self) -> None:
        """Stop the sync thread (the nodes stay open)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive() and self._thread_pid == os.getpid():
            thread.join(timeout=5)

    def close(self) -> None:
        """Stop the sync and close both nodes."""
        self.stop()
        for node in (self.local, self.peer):
            node.close()

    # --- for pages and checks -------------------------------------------------------------------

    def ping(self, name: str) -> None:
        """Return when node ``name`` (local or peer) answers; raise NodeUnavailable otherwise."""
        node = self.local if name == "local" else self.peer
        self._call(node, node.ping)

    def describe(self) -> dict[str, Any]:
        """The store's state for pages: mode, nodes, breakers, queue and staleness."""
        return {
            "mode": self.mode,
            "max_staleness_ms": self.max_staleness_ms,
            "replication_queue": self._queue_length,
            "nodes": {
                node.name: {
                    "kind": node.url.partition(":")[0],
                    "breaker": self.breakers[node.name].name,
                    "state": self.breakers[node.name].state.value,
                    "staleness_ms": self.staleness_ms(node.name),
                }
                for node in (self.local, self.peer)
            },
        }


def undoing(record: Record, previous: Record | None) -> Record:
    """The record that undoes ``record``: its previous value (a tombstone when none), one
    version above it.

    An undo writes forward, never back: a write that lands after its undo loses to it by
    version, and a repair or an undo from a stale view of the previous record (which the key
    held before) never matches it again. Computed the same by every worker, so undoes agree.
    """
    return Record(None if previous is None else previous.value, record.version + 1)


def _in_progress(key: str) -> Unavailable:
    return Unavailable(
        "write_in_progress", f"another write of {key!r} is in flight or being undone: retry"
    )


def _conflict(key: str) -> Unavailable:
    return Unavailable(
        "write_conflict",
        f"other writes of {key!r} kept landing first ({WRITE_ATTEMPTS} tries): retry",
    )


def _newest(first: Record | None, second: Record | None) -> Record | None:
    return first if _order(first) >= _order(second) else second


def _order(record: Record | None) -> tuple[int, bool, str]:
    return (-1, False, "") if record is None else record.order()


def _holds(record: Record | None, at_least: int | None) -> bool:
    """True when ``record`` satisfies a read asking for ``at_least`` (None: anything does)."""
    return at_least is None or (record is not None and record.version >= at_least)
