"""What a storage node holds, and the one interface both node kinds implement.

A record is a value with its version, or a tombstone (a delete, kept with its version so that
an older write replayed later cannot resurrect the key). Replicas converge by last writer
wins: of two records for a key, the one with the greater ``(version, value)`` wins, so equal
versions written by two instances still settle on the same value on both nodes.

A hint is a write owed to the other node (hinted handoff), kept durably in the node that holds
the data, and replayed in ``id`` order:

* ``expect is None``: apply ``record`` with last-writer-wins (an ordinary replication);
* ``expect`` set: a compensation (CP mode): where a node still holds exactly the record
  ``expect`` for the key, put back ``record`` (the key's previous record), or remove the key
  when ``record`` is None. A CP write queues its compensation with the write itself (an
  intent), and drops it once both nodes hold the write; a write that fails half-way, or whose
  writer dies, is undone by it. While a compensation for a key is queued, the key is *pending*.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol

__all__ = ["Hint", "Node", "NodeUnavailable", "PutPlan", "PutResult", "Record", "newer", "plan_put"]


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """A value and its version; ``value is None`` is a tombstone (the key was deleted)."""

    value: str | None
    version: int

    @property
    def deleted(self) -> bool:
        """True for a tombstone."""
        return self.value is None

    def order(self) -> tuple[int, bool, str]:
        """The last-writer-wins order: version, then value (a tombstone lowest, below ``""``).

        The middle term keeps a tombstone and an empty value of one version apart: were they
        equal, neither would replace the other, and two nodes that saw them in opposite orders
        would keep different records for ever.
        """
        return self.version, self.value is not None, self.value or ""


def newer(candidate: Record, current: Record | None) -> bool:
    """True when ``candidate`` replaces ``current`` under last writer wins."""
    return current is None or candidate.order() > current.order()


@dataclasses.dataclass(frozen=True, slots=True)
class Hint:
    """A write owed to the other node; see the module for ``expect``."""

    id: int
    key: str
    record: Record | None
    expect: Record | None = None
    created_ms: int = 0
    """When it was queued (the writer's wall clock, ms since the Unix epoch)."""

    @property
    def compensation(self) -> bool:
        """True for a compensation (an undo), False for a replication."""
        return self.expect is not None


@dataclasses.dataclass(frozen=True, slots=True)
class PutResult:
    """What :meth:`Node.put` did: whether it stored the record, and what it replaced."""

    applied: bool
    previous: Record | None
    hint_id: int | None = None
    busy: bool = False
    """An ``exclusive`` put refused because a compensation for the key is queued there."""


@dataclasses.dataclass(frozen=True, slots=True)
class PutPlan:
    """What a put does to a node, decided from the key's state (see :func:`plan_put`)."""

    busy: bool
    applied: bool
    queued: tuple[Record | None, Record | None] | None
    """(record, expect) of the hint or intent queued with the write; None for neither."""


def plan_put(
    record: Record,
    previous: Record | None,
    *,
    pending: bool,
    hint: bool,
    intent: bool,
    exclusive: bool,
) -> PutPlan:
    """The one rule of :meth:`Node.put` for the nodes written in Python (Redis's Lua mirrors it).

    An intent or exclusive put of a key with a compensation queued (``pending``) does nothing
    (busy). Otherwise ``record`` is stored when newer; a hint queues the record for the other
    node, an intent queues the undo: put back ``previous`` while the key holds ``record``.
    """
    if (intent or exclusive) and pending:
        return PutPlan(busy=True, applied=False, queued=None)
    queued = (record, None) if hint else (previous, record) if intent else None
    return PutPlan(busy=False, applied=newer(record, previous), queued=queued)


class NodeUnavailable(Exception):  # noqa: N818  (an outcome, read as one: "node unavailable")
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

    def inspect(self, key: str) -> tuple[Record | None, bool]:
        """The key's record, and whether a compensation for the key is queued here."""
        ...

    def put(
        self, key: str, record: Record, *, hint: bool = False, intent: bool = False,
        exclusive: bool = False, created_ms: int = 0,
    ) -> PutResult:  # fmt: skip
        """Store ``record`` if it is :func:`newer` than the current one.

        In the same transaction, and also when not applied, queue (its id is returned):

        * ``hint``: a replication of this record for the other node;
        * ``intent``: its compensation (put back the current record where ``record`` is held).

        ``exclusive`` (implied by ``intent``): do nothing, and say ``busy``, while the key is
        pending here: CP writes of one key go one at a time.
        """
        ...

    def restore(self, key: str, previous: Record | None, *, expect: Record | None) -> bool:
        """If the key holds exactly ``expect`` (None: nothing), put back ``previous``.

        ``previous`` None removes the key. A compare-and-set: True when it swapped.
        """
        ...

    def add_hint(
        self, key: str, record: Record | None, *, expect: Record | None = None,
        created_ms: int = 0,
    ) -> int:  # fmt: skip
        """Queue a hint for the other node; returns its id (ids grow)."""
        ...

    def hints(self, limit: int, *, after: int = 0) -> list[Hint]:
        """The oldest ``limit`` hints with an id above ``after``, in id order."""
        ...

    def drop_hint(self, hint_id: int, *, force: bool = False) -> bool:
        """Remove a hint; True if this call removed it (one caller wins: a claim).

        A hint the sync has claimed (:meth:`claim_hint`) is removed only with ``force``.
        """
        ...

    def claim_hint(self, hint_id: int) -> bool:
        """Mark a compensation as the sync's (again, if a sync died half-way); False if gone.

        Once marked, its writer's :meth:`drop_hint` fails: the write is being undone.
        """
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
