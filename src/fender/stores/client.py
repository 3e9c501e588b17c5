"""Transitional: an old import path of ``fender/web/``, until its imports name ``fender.redis``."""

from fender.stores._url import parse_redis_url

__all__ = ["parse_redis_url"]
