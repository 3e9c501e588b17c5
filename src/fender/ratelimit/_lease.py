"""Lease mode: far from its limit, an instance takes several requests from Redis at once.

One EVALSHA of ``lease.lua`` takes a *lease* of ``size`` requests for every limit of a
request; the instance then spends them in memory (no round trip) until they are spent or
``ttl`` has passed. A lease is granted only while every limit keeps ``reserve`` requests after
it (``size`` times the live instances), so near the limit, and for costs other than 1, each
request is decided in Redis exactly, in the same call. Sliding-window policies always go exact.

The bound, across N instances sharing a key (each holds at most one lease per key):

* Over-admission: Redis counts a lease when it grants it, so it never grants more than the
  limit holds; a leased request is only spent up to ``ttl`` later than it was counted. In any
  window, at most ``N x size`` more requests pass than an exact limiter would admit.
* Under-admission: a lease left unspent is not returned; its requests stay counted and come
  back at the policy's rate, as if they had been used. At most ``N x size`` requests are lost
  this way, and only while a lease is held (``ttl``) plus the time the rate takes to refill
  them.

:class:`LeaseBook` is the sans-I/O half: the local leases, the call to make, the reply's
reading. The shells in :mod:`._tiered` make the call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal

from fender._clock import Clock, monotonic
from fender.errors import ConfigurationError
from fender.ratelimit._gcra import Cell, cells_for, evaluate, impossible
from fender.ratelimit._policy import Algorithm, Decision
from fender.ratelimit._redis import RedisScript, is_noscript
from fender.ratelimit._tiers import Items
from fender.settings import field_default
from fender.stores._commands import Op

if TYPE_CHECKING:
    from fender.settings import Settings

__all__ = ["ENV_NAMES", "LEASE_LUA", "LEASE_SHA", "LeaseBook", "LeaseCall", "LeaseConfig"]

ENV_NAMES: Final = {
    "mode": "FENDER_RATE_LIMIT_MODE",
    "size": "FENDER_RATE_LIMIT_LEASE_SIZE",
    "ttl": "FENDER_RATE_LIMIT_LEASE_TTL_MS",
}
"""The settings :class:`LeaseConfig` reads (the rest of ``rate_limit_*`` is RateLimitConfig's)."""

LEASE_LUA: Final = resources.files("fender.ratelimit").joinpath("lease.lua").read_text("utf-8")
"""The Lua source of the lease script."""
LEASE_SHA: Final = hashlib.sha1(LEASE_LUA.encode(), usedforsecurity=False).hexdigest()
_US: Final = 1_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class LeaseConfig:
    """How the shared limiter spends Redis round trips.

    Attributes:
        mode: ``lease`` (default: far from the limit, one round trip per ``size`` requests,
            over-admission bounded by ``instances x size``) or ``exact`` (one round trip per
            request, never over the limit).
        size: requests taken per lease; 1 behaves as ``exact``.
        ttl: seconds a lease may be spent before it is dropped.
        max_keys: leases held at once (oldest dropped first).
    """

    mode: Literal["lease", "exact"] = field_default("rate_limit_mode")
    size: int = field_default("rate_limit_lease_size")
    ttl: float = field_default("rate_limit_lease_ttl_ms") / 1000
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        """Validate; raise :class:`ConfigurationError` naming the setting."""
        if self.mode not in {"lease", "exact"}:
            raise ConfigurationError("rate_limit_mode", self.mode, "'lease' or 'exact'")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigurationError("rate_limit_lease_size", self.size, "an integer >= 1")
        if not 0 < self.ttl <= 60:  # noqa: PLR2004  (a lease older than a minute is stale)
            raise ConfigurationError("rate_limit_lease_ttl_ms", self.ttl, "0 < ttl <= 60 s")
        if self.max_keys < 1:
            raise ConfigurationError("rate_limit_lease_max_keys", self.max_keys, ">= 1")

    @property
    def leasing(self) -> bool:
        """Whether leases are taken at all."""
        return self.mode == "lease" and self.size > 1

    @classmethod
    def from_settings(cls, settings: Settings | None) -> LeaseConfig:
        """From FENDER_RATE_LIMIT_MODE, FENDER_RATE_LIMIT_LEASE_SIZE, ..._LEASE_TTL_MS.

        None (no settings at hand) gives the defaults.
        """
        if settings is None:
            return cls()
        return cls(
            mode=settings.rate_limit_mode,
            size=settings.rate_limit_lease_size,
            ttl=settings.rate_limit_lease_ttl_ms / 1000,
        )


@dataclass(frozen=True, slots=True)
class LeaseCall:
    """The arguments of one lease-script call."""

    cells: list[Cell]
    cost: int
    size: int
    numkeys: int
    args: tuple[int | str, ...]
    key: object


class _Lease:
    """Requests of one lease not spent yet, until ``expires``; ``decision`` answers them."""

    __slots__ = ("decision", "expires", "tokens")

    def __init__(self, tokens: int, expires: float, decision: Decision) -> None:
        self.tokens = tokens
        self.expires = expires
        self.decision = decision


class LeaseBook:
    """The sans-I/O half of lease mode: local leases, the call to make, the reply's reading.

    Args:
        config: the lease settings.
        algorithm: the policies' arithmetic (leases are GCRA only).
        clock: monotonic seconds for the leases' expiry.
        redis_clock: tests only: drive the script's time by hand.
    """

    __slots__ = ("_clock", "_leases", "_pending", "_redis_clock", "config", "enabled")

    def __init__(
        self,
        config: LeaseConfig,
        *,
        algorithm: Algorithm,
        clock: Clock = monotonic,
        redis_clock: Clock | None = None,
    ) -> None:
        """Hold no lease yet."""
        self.config = config
        self.enabled = config.leasing and Algorithm(algorithm) is Algorithm.GCRA
        self._clock = clock
        self._redis_clock = redis_clock
        self._leases: dict[object, _Lease] = {}
        # Keys whose lease is being taken: concurrent requests on them (threads, asyncio
        # tasks) decide exactly meanwhile, so that an instance holds one lease per key.
        self._pending: set[object] = set()

    @staticmethod
    def _key(items: Items) -> object:
        return items[0][0] if len(items) == 1 else tuple(key for key, _ in items)

    def spend(self, items: Items, cost: int) -> Decision | None:
        """The decision from a lease held here, or None: ask Redis."""
        if cost != 1 or not self._leases:
            return None
        lease = self._leases.get(self._key(items))
        if lease is None or lease.tokens < 1:
            return None
        if self._clock() >= lease.expires:
            del self._leases[self._key(items)]
            return None
        lease.tokens -= 1
        return lease.decision

    def prepare(self, items: Items, cost: int, instances: int) -> LeaseCall | None:
        """The lease call for this request, or None: decide it exactly (ratelimit.lua)."""
        if not self.enabled or cost != 1:
            return None
        for _, policy in items:
            if policy.exact:  # marked exact (@rate_limit(..., exact=True)): no lease, ever
                return None
        key = self._key(items)
        if key in self._pending:
            return None
        cells = cells_for(items, Algorithm.GCRA)
        if impossible(cells, cost, Algorithm.GCRA) is not None:
            return None
        # A lease larger than a quarter of the smallest burst would leave too few requests
        # for the other instances: such a tight limit is decided exactly.
        size = min(self.config.size, min(limit.burst for _, _, limit in cells) // 4)
        if size < 2:  # noqa: PLR2004  (a lease of one request is an exact decision)
            return None
        now = "" if self._redis_clock is None else str(round(self._redis_clock() * _US))
        argv: list[int | str] = [now, cost, size, size * max(1, instances)]
        for _key, _name, limit in cells:
            argv += (limit.emission_us, limit.tolerance_us)
        self._pending.add(key)
        return LeaseCall(cells, cost, size, len(cells), (*(c[0] for c in cells), *argv), key)

    def abandon(self, call: LeaseCall) -> None:
        """The lease call failed: the key may be leased again."""
        self._pending.discard(call.key)

    def parse(self, call: LeaseCall, reply: Sequence[int]) -> Decision:
        """Read the reply: keep a granted lease (less this request), return the decision."""
        self._pending.discard(call.key)
        now, taken = int(reply[0]), int(reply[1])
        states = [int(value) for value in reply[2:]]
        decision, _ = evaluate(call.cells, states, now, taken or call.cost, Algorithm.GCRA)
        if taken == call.size:
            leases = self._leases
            if len(leases) >= self.config.max_keys:
                del leases[next(iter(leases))]
            leases[call.key] = _Lease(taken - call.cost, self._clock() + self.config.ttl, decision)
        return decision

    def flow(
        self, script: RedisScript, items: Items, cost: int, instances: int
    ) -> Generator[Op, Any, Decision]:
        """One decision on Redis as a sans-I/O flow: a lease call, else the exact one.

        The shells drive it (:func:`fender._flow.drive` / ``adrive``); a failed call gives the
        key back to leasing and the error to the shell's breaker.
        """
        call = self.prepare(items, cost, instances)
        if call is None:
            return (yield from script.flow(items, cost))
        try:
            try:
                reply = yield ("evalsha", (LEASE_SHA, call.numkeys, *call.args), {})
            except Exception as exc:
                if not is_noscript(exc):
                    raise
                reply = yield ("eval", (LEASE_LUA, call.numkeys, *call.args), {})
        except BaseException:
            self.abandon(call)
            raise
        return self.parse(call, reply)

    def held(self) -> int:
        """Requests held in unexpired leases (for tests and the bench)."""
        now = self._clock()
        return sum(lease.tokens for lease in self._leases.values() if lease.expires > now)

    def clear(self) -> None:
        """Drop every lease (their requests stay counted in Redis)."""
        self._leases.clear()
        self._pending.clear()
