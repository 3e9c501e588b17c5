"""``fender.cache``: a JSON cache with TTL and single flight on top of the resilient Redis."""

from fender.stores._cache import AsyncCache, Cache, CacheConfig

__all__ = ["AsyncCache", "Cache", "CacheConfig"]
