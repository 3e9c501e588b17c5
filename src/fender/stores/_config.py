"""How a resilient Redis store is configured: its outage behaviour, its breaker, its errors.

Example:
    >>> RedisStoreConfig(on_recovery="write_back").on_recovery
    <RecoveryPolicy.WRITE_BACK: 'write_back'>
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from typing import Final

from fender.errors import ConfigurationError
from fender.resilience import BreakerConfig
from fender.stores._clients import seconds_ok

__all__ = ["REDIS_BREAKER", "RecoveryPolicy", "RedisStoreConfig", "outage_errors"]


@functools.cache
def outage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "Redis is not serving": they count against the breaker, the tier answers.

    Any other error (a ``WRONGTYPE`` reply, bad arguments) is the caller's: it propagates, and
    the breaker counts the call as a success, because the server did answer.

    A function, not a constant, so that redis-py loads only when a store has a client: an
    ``except outage_errors()`` clause is evaluated only when an exception reaches it.
    """
    from redis import exceptions as redis_errors

    return (
        redis_errors.ConnectionError,  # refused, reset, pool exhausted, still loading, auth lost
        redis_errors.TimeoutError,
        redis_errors.InvalidResponse,  # a proxy or a half-dead server speaking garbage
        redis_errors.ReadOnlyError,  # a replica promoted under us: writes cannot land
        redis_errors.ClusterError,  # cluster down, slots moving
        redis_errors.TryAgainError,
        redis_errors.RedisClusterException,
        OSError,  # the socket layer and asyncio's TimeoutError
    )


REDIS_BREAKER: Final = BreakerConfig(
    failure_threshold=5,
    failure_rate_threshold=50.0,
    # A hung Redis ends in a socket timeout (a failure); the slow-call rule would only repeat it.
    slow_call_rate_threshold=None,
    minimum_number_of_calls=20,
    recovery_timeout=2.0,
    recovery_timeout_multiplier=2.0,
    max_recovery_timeout=30.0,
    permitted_calls_in_half_open=1,
    success_threshold=2,
)
"""The breaker fender's Redis store uses unless given one: five straight failures trip it."""


class RecoveryPolicy(enum.StrEnum):
    """What happens in Redis to the keys written locally during an outage."""

    INVALIDATE = "invalidate"
    """Delete them: the next read misses and reloads (right for caches and counters)."""
    WRITE_BACK = "write_back"
    """Write the local values back with their remaining TTL (last writer wins)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RedisStoreConfig:
    """How a resilient store behaves around outages; immutable, validated when built.

    Example:
        >>> RedisStoreConfig(on_recovery="write_back").on_recovery
        <RecoveryPolicy.WRITE_BACK: 'write_back'>
    """

    name: str = "redis"
    """Names the breaker (in its registry), the ``name`` label of the metrics and the logs."""
    on_recovery: RecoveryPolicy = RecoveryPolicy.INVALIDATE
    """What to do in Redis with the keys written locally during an outage."""
    probe_interval: float = 0.5
    """Seconds between background probes while the breaker is open."""
    fallback: bool = True
    """Serve from the tier during an outage; off, reads return the default, writes are dropped
    and the health check fails instead of warning."""
    max_journal: int = 100_000
    """Keys the outage journal remembers; past it, writes still land in the tier but are not
    reconciled (counted and logged: those keys may be stale in Redis after the outage)."""

    def __post_init__(self) -> None:
        """Raise :class:`~fender.errors.ConfigurationError` naming the first invalid field."""
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", self.name):
            raise ConfigurationError("name", self.name, "1-64 letters, digits, '_', '.' or '-'")
        try:
            object.__setattr__(self, "on_recovery", RecoveryPolicy(self.on_recovery))
        except ValueError:
            raise ConfigurationError(
                "on_recovery", self.on_recovery, "'invalidate' or 'write_back'"
            ) from None
        if not seconds_ok(self.probe_interval):
            raise ConfigurationError("probe_interval", self.probe_interval, "seconds > 0")
        if not isinstance(self.fallback, bool):
            raise ConfigurationError("fallback", self.fallback, "True or False")
        if not isinstance(self.max_journal, int) or isinstance(self.max_journal, bool):
            raise ConfigurationError("max_journal", self.max_journal, "an integer >= 0")
        if self.max_journal < 0:
            raise ConfigurationError("max_journal", self.max_journal, "an integer >= 0")
