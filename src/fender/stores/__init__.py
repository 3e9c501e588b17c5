"""Stores: the bounded in-memory tier, and the implementation of ``fender.redis`` and ``.cache``.

The public names of the resilient Redis store live in :mod:`fender.redis`, those of the JSON
cache in :mod:`fender.cache`; this package exports the in-memory tier they fall back to. Its
private modules, one concept each:

* ``_url``: ``REDIS_URL`` parsed and checked; ``_clients``: redis-py clients with safe limits;
* ``_commands``: Redis commands as data and the sync and asyncio drivers of flows of them;
* ``_serving``: the question "is Redis serving?" (PING, or CLUSTER INFO on every primary);
* ``_config``, ``_result``, ``_metrics``: the store's configuration, answers and metrics;
* ``_core``: the store's decisions without I/O; ``_outage``: the outage record and journal;
  ``_healing``: the probe and the settling of the journal;
* ``_shell``, ``_sync``, ``_async``, ``_prober``: the sync and asyncio shells and probers;
* ``_health``: the store's health check; ``_factory``: the stores built from settings;
* ``_memory``: the in-memory tier; ``_cache``: the JSON cache.

Example:
    >>> from fender.stores import MemoryTier, TierConfig
    >>> tier = MemoryTier(TierConfig(max_entries=100))
    >>> tier.set("k", b"v", ttl=10)
    True
    >>> tier.get("k")
    b'v'
"""

from __future__ import annotations

from fender.stores._memory import MemoryTier, TierConfig, TierEntry

__all__ = ["MemoryTier", "TierConfig", "TierEntry"]
