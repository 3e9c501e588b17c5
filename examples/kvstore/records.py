"""What a storage node holds, and the one interface both node kinds implement.

A record is a value with its version, or a tombstone (a delete, kept with its version so that
an older write replayed later cannot resurrect the key). Replicas converge by last writer
wins: of two records for a key, the one with the greater ``(version, value)`` wins, so equal
versions written by two instances still settle on the same value on both nodes.

A hint is a write owed to the other node (hinted handoff), kept durably in the node that holds
the data, and replayed in ``id`` order:

* ``expect is None``: apply ``record`` with last-writer-wins (an ordinary replication);
* ``expect`` set: a compensation (CP mode): if the node still holds version ``expect`` for the
  key, put back ``record`` (the key's previous record), or remove the key when ``record`` is
  None. A write the peer may have taken before a timeout is undone this way when it returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol

__all__ = ["Hint", "Node", "NodeUnavailable", "PutResult", "Record", "newer"]


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """A value and its version; ``value is None`` is a tombstone (the key was deleted)."""

    value: str | None
    version: int

    @property
    def deleted(self) -> bool:
        """True for a tombstone."""
        return self.value is None

    def order(self) -> tuple[int, str]:
        """The last-writer-wins order: version, then value (a tombstone lowest)."""
        return self.version, self.value or ""


def newer(candidate: Record, current: Record | None) -> bool:
    """True when ``candidate`` replaces ``current`` under last writer wins."""
    return current is None or candidate.order() > current.order()


@dataclasses.dataclass(frozen=True, slots=True)
class Hint:
    """A write owed to the other node; see the module for ``expect``."""

    id: int
    key: str
    record: Record | None
    expect: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PutResult:
    """What :meth:`Node.put` did: whether it stored the record, and what it replaced."""

    applied: bool
    previous: Record | None
    hint_id: int | None = None


class NodeUnavailable(Exception):  # noqa: N818  (a state, as CallNotPermitted)
    """The node could not be reached or answered in time (any transport or storage failure)."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"{node}: {reason}")
        self.node = node
        self.reason = reason


class Node(Protocol):
    """A storage node: a Redis server or a SQLite file. Every method may raise NodeUnavailable.

    Each method is one round trip (one Lua script, or one SQLite transaction), so a write and
    its hint are stored together or not at all.
    """

    name: str
    """The node's role for this instance: ``local`` or ``peer`` (labels, breaker names)."""

    url: str
    """The node's URL with any password masked (for logs and pages)."""

    def get(self, key: str) -> Record | None:
        """The key's record (a tombstone included), or None when the node never saw it."""
        ...

    def put(self, key: str, record: Record, *, hint: bool = False) -> PutResult:
        """Store ``record`` if it is :func:`newer` than the current one.

        ``hint``: in the same transaction, queue a hint of this record for the other node
        (also when not applied: the other node may still lack it); its id is returned.
        """
        ...

    def restore(self, key: str, previous: Record | None, *, expect: int) -> bool:
        """If the key's version is ``expect``, put back ``previous`` (None: remove the key)."""
        ...

    def add_hint(self, key: str, record: Record | None, *, expect: int | None = None) -> int:
        """Queue a hint for the other node; returns its id (ids grow)."""
        ...

    def hints(self, limit: int) -> list[Hint]:
        """The oldest ``limit`` hints, in id order."""
        ...

    def drop_hint(self, hint_id: int) -> None:
        """Remove a hint (idempotent: several workers may replay the same one)."""
        ...

    def hint_count(self) -> int:
        """How many hints are queued."""
        ...

    def items(self) -> Iterator[tuple[str, Record]]:
        """Every key and record, tombstones included (for backups and convergence checks)."""
        ...

    def ping(self) -> None:
        """Return when the node answers; raise NodeUnavailable otherwise."""
        ...

    def close(self) -> None:
        """Free the connections."""
        ...
