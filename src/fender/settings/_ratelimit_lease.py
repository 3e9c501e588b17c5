"""The shared limiter's round-trip settings: exact or lease mode, the lease's size and life.

A mixin of :class:`~fender.settings.Settings`, as :mod:`fender.settings._monitor` is; read by
:meth:`fender.ratelimit._lease.LeaseConfig.from_settings`. They matter only with a REDIS_URL.
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings

from fender.settings._fields import env_field

__all__ = ["LeaseFields"]


class LeaseFields(BaseSettings):
    """Fields of issue 16: how the limits shared through Redis spend round trips."""

    rate_limit_mode: Literal["lease", "exact"] = env_field(
        "FENDER_RATE_LIMIT_MODE",
        default="lease",
        description="lease: far from a limit, each instance takes several requests from Redis "
        "at once (over-admission at most instances x lease size); exact: one Redis call a "
        "request, never over the limit.",
    )
    rate_limit_lease_size: int = env_field(
        "FENDER_RATE_LIMIT_LEASE_SIZE",
        default=20,
        ge=1,
        le=1000,
        description="Requests an instance takes from Redis per lease (capped at a quarter of the "
        "smallest burst).",
    )
    rate_limit_lease_ttl_ms: float = env_field(
        "FENDER_RATE_LIMIT_LEASE_TTL_MS",
        default=1000.0,
        gt=0,
        le=60_000,
        description="How long a lease may be spent before its unspent requests are dropped.",
    )
