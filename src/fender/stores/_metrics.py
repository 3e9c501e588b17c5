"""The resilient store's metrics: fallback reads and writes, tier size, backend, errors."""

from __future__ import annotations

from fender.observability import _metrics as metrics
from fender.stores._memory import MemoryTier
from fender.stores._result import Source

__all__ = ["StoreMetrics"]


class StoreMetrics:
    """The store's metric children for one ``name``, resolved once."""

    __slots__ = (
        "backend_memory",
        "backend_redis",
        "errors",
        "name",
        "read_hit",
        "read_miss",
        "read_stale",
        "tier_bytes",
        "tier_entries",
        "writes",
    )

    def __init__(self, name: str) -> None:
        """Declare the metrics (once per process) and resolve ``name``'s children."""
        reads = metrics.counter(
            "redis_fallback_reads",
            "Reads answered by the in-memory tier while Redis was down, by result.",
            ("name", "result"),
        )
        self.read_hit = reads.labels(name, "hit")
        self.read_stale = reads.labels(name, "stale")
        self.read_miss = reads.labels(name, "miss")
        writes = metrics.counter(
            "redis_fallback_writes",
            "Writes taken by the in-memory tier while Redis was down, by operation.",
            ("name", "op"),
        )
        self.writes = {op: writes.labels(name, op) for op in ("set", "delete", "incr")}
        self.tier_entries = metrics.gauge(
            "redis_tier_entries", "Entries in the in-memory tier.", ("name",)
        ).labels(name)
        self.tier_bytes = metrics.gauge(
            "redis_tier_bytes", "Bytes held by the in-memory tier.", ("name",)
        ).labels(name)
        backend = metrics.gauge(
            "redis_backend",
            "1 for the backend serving this store (redis or memory); summed over workers.",
            ("name", "backend"),
        )
        self.backend_redis = backend.labels(name, "redis")
        self.backend_memory = backend.labels(name, "memory")
        self.errors = metrics.LabelGuard(
            metrics.counter(
                "redis_errors", "Redis calls that failed, by error class.", ("name", "error")
            ),
            max_series=32,
            overflow_index=1,
        )
        self.name = name

    def serving(self, source: Source) -> None:
        """Set the ``redis_backend`` gauges: 1 for ``source``, 0 for the other backend."""
        self.backend_redis.set(1 if source is Source.REDIS else 0)
        self.backend_memory.set(1 if source is Source.MEMORY else 0)

    def tier_changed(self, tier: MemoryTier) -> None:
        """Set the tier's size gauges after a write or a delete."""
        self.tier_entries.set(len(tier))
        self.tier_bytes.set(tier.nbytes)
