"""The store's Prometheus metrics, under the names existing dashboards query.

Declared with prometheus_client, as any app declares its own; fender serves them on
``/metrics`` beside its own (and sums them over gunicorn's workers). ``circuit_breaker_state``
is fender's own (one series per breaker: ``kv-local``, ``kv-peer``).
"""

from __future__ import annotations

import functools
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONNECTION_FAILURES",
    "QUEUE_LENGTH",
    "REQUESTS",
    "REQUEST_LATENCY",
    "STALENESS",
    "observed",
]

REQUESTS: Final = Counter(
    "app_requests",
    "Key-value requests, by mode, operation (read, write, delete) and HTTP status.",
    ["mode", "operation", "status"],
)
REQUEST_LATENCY: Final = Histogram(
    "app_request_latency_seconds",
    "Key-value request latency in seconds, by mode and operation.",
    ["mode", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
STALENESS: Final = Gauge(
    "data_staleness_ms",
    "Milliseconds since the node was last known in sync with the other node "
    "(local: what reads serve; peer: what it lacks of this instance's writes).",
    ["node"],
    multiprocess_mode="livemax",
)
CONNECTION_FAILURES: Final = Counter(
    "db_connection_failures",
    "Calls to a storage node that failed (unreachable, timed out or refused by its breaker).",
    ["node"],
)
QUEUE_LENGTH: Final = Gauge(
    "kv_replication_queue_length",
    "Hints (writes owed to the peer node) queued in the local node.",
    multiprocess_mode="livemax",
)


@functools.cache
def observed(mode: str, operation: str, status: str) -> tuple[Any, Any]:
    """The request counter and latency children of one outcome, looked up once, not per request.

    Bounded: two modes, a handful of operations, the statuses the store answers.
    """
    return REQUESTS.labels(mode, operation, status), REQUEST_LATENCY.labels(mode, operation)
