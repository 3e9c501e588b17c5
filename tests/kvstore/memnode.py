"""An in-memory storage node for the store's unit tests: the Node protocol over dicts.

``down = True`` makes every call raise NodeUnavailable, as a node behind a partition does;
``lose_reply = True`` applies a put and then raises (the reply lost to a timeout).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from examples.kvstore.records import Hint, NodeUnavailable, PutResult, Record, plan_put


class MemoryNode:
    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"memory://{name}"
        self.data: dict[str, Record] = {}
        self.queue: dict[int, Hint] = {}
        self.claimed: set[int] = set()
        self.down = False
        self.lose_reply = False
        self.calls = 0
        self._next_id = 1
        self._lock = threading.Lock()

    @staticmethod
    def alias(node: MemoryNode, name: str) -> Any:
        """The same node under another role name (two instances sharing the nodes)."""
        return _Alias(node, name)

    def _enter(self) -> None:
        self.calls += 1
        if self.down:
            raise NodeUnavailable(self.name, "partitioned (test)")

    def get(self, key: str) -> Record | None:
        self._enter()
        return self.data.get(key)

    def inspect(self, key: str) -> tuple[Record | None, bool]:
        self._enter()
        with self._lock:
            return self.data.get(key), self._pending(key)

    def _pending(self, key: str) -> bool:
        return any(h.key == key and h.compensation for h in self.queue.values())

    def put(
        self,
        key: str,
        record: Record,
        *,
        hint: bool = False,
        intent: bool = False,
        exclusive: bool = False,
        created_ms: int = 0,
    ) -> PutResult:
        self._enter()
        with self._lock:
            previous = self.data.get(key)
            plan = plan_put(
                record,
                previous,
                pending=self._pending(key),
                hint=hint,
                intent=intent,
                exclusive=exclusive,
            )
            if plan.busy:
                return PutResult(applied=False, previous=previous, busy=True)
            if plan.applied:
                self.data[key] = record
            hint_id = None
            if plan.queued is not None:
                hint_id = self._queue(key, *plan.queued, created_ms)
        if self.lose_reply:
            raise NodeUnavailable(self.name, "reply lost (test)")
        return PutResult(plan.applied, previous, hint_id)

    def restore(self, key: str, previous: Record | None, *, expect: Record | None) -> bool:
        self._enter()
        with self._lock:
            if self.data.get(key) != expect:
                return False
            if previous is None:
                self.data.pop(key, None)
            else:
                self.data[key] = previous
            return True

    def _queue(
        self, key: str, record: Record | None, expect: Record | None, created_ms: int
    ) -> int:
        hint_id = self._next_id
        self._next_id += 1
        self.queue[hint_id] = Hint(hint_id, key, record, expect, created_ms)
        return hint_id

    def add_hint(
        self,
        key: str,
        record: Record | None,
        *,
        expect: Record | None = None,
        created_ms: int = 0,
    ) -> int:
        self._enter()
        with self._lock:
            return self._queue(key, record, expect, created_ms)

    def hints(self, limit: int, *, after: int = 0) -> list[Hint]:
        self._enter()
        with self._lock:
            return [self.queue[i] for i in sorted(self.queue) if i > after][:limit]

    def drop_hint(self, hint_id: int, *, force: bool = False) -> bool:
        self._enter()
        with self._lock:
            if hint_id in self.claimed and not force:
                return False
            self.claimed.discard(hint_id)
            return self.queue.pop(hint_id, None) is not None

    def claim_hint(self, hint_id: int) -> bool:
        self._enter()
        with self._lock:
            if hint_id not in self.queue:
                return False
            self.claimed.add(hint_id)
            return True

    def hint_count(self) -> int:
        self._enter()
        return len(self.queue)

    def items(self) -> Iterator[tuple[str, Record]]:
        self._enter()
        return iter(sorted(self.data.items()))

    def ping(self) -> None:
        self._enter()

    def close(self) -> None:
        pass


class _Alias:
    """A node seen by another instance: its role name differs, everything else is the node's."""

    def __init__(self, node: MemoryNode, name: str) -> None:
        self._node = node
        self.name = name
        self.url = node.url

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._node, attribute)
