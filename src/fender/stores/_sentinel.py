"""Sentinel connection pools that close the connections to the Sentinels too.

Apart from :mod:`fender.stores._clients` so that redis-py's Sentinel modules load only when a
``redis+sentinel://`` URL is used.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio.sentinel
import redis.sentinel

__all__ = ["SENTINEL_POOLS"]


class _SentinelPool(redis.sentinel.SentinelConnectionPool):
    """The master's pool; closing it also closes the connections to the Sentinels.

    redis-py leaves those open when the master's client is closed (a leaked socket per
    Sentinel asked).
    """

    def disconnect(self, inuse_connections: bool = True) -> None:  # noqa: FBT001, FBT002  (redis-py's signature)
        """Close the master's connections and the Sentinels'."""
        super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect()


class _AsyncSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool):
    """:class:`_SentinelPool` for ``redis.asyncio``."""

    async def disconnect(self, inuse_connections: bool = True) -> None:  # noqa: FBT001, FBT002  (redis-py's signature)
        """Close the master's connections and the Sentinels'."""
        await super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.connection_pool.disconnect()


SENTINEL_POOLS: dict[str, type[Any]] = {
    "redis": _SentinelPool,
    "redis.asyncio": _AsyncSentinelPool,
}
