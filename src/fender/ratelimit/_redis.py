"""The Redis rate limiter: one EVALSHA per decision, sync and asyncio clients alike.

:class:`RedisScript` does everything but I/O: it builds the EVALSHA arguments for all the
limits of a request (e.g. per IP, per user, per route) and turns the script's reply into a
:class:`Decision` with the same pure arithmetic the memory limiter runs. :class:`RedisLimiter`
and :class:`AsyncRedisLimiter` are two thin drivers that make the one call, so the async
tree is not a copy of the sync one.

Time comes from the Redis server (``TIME`` inside the script), so every app instance shares
one clock. Keys expire on their own when they would be full again. After a Redis restart
the script cache is empty: the NOSCRIPT reply is answered with one EVAL, which runs the
request and caches the script again (two round trips, that once).

For Redis Cluster, build the keys of one request with the same hash tag
(:class:`~fender.ratelimit._policy.KeyBuilder`) so that the script runs in one slot.

Errors of the client (connection refused, timeouts) propagate: the caller's breaker and
fallback tier decide what to do. Give the client short socket timeouts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Generator, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Protocol

from fender._clock import Clock
from fender._flow import adrive, drive
from fender.errors import ConfigurationError
from fender.ratelimit._gcra import Cell, State, cells_for, check_cost, evaluate, impossible
from fender.ratelimit._policy import Algorithm, Decision, RateLimitPolicy
from fender.stores._commands import Op

__all__ = [
    "AsyncRedisLimiter",
    "AsyncScriptClient",
    "RedisLimiter",
    "RedisScript",
    "ScriptCall",
    "ScriptClient",
    "is_noscript",
]

logger = logging.getLogger("fender.ratelimit")

LUA_SCRIPT: str = resources.files("fender.ratelimit").joinpath("ratelimit.lua").read_text("utf-8")
"""The Lua source of the decision script."""
LUA_SHA: str = hashlib.sha1(LUA_SCRIPT.encode(), usedforsecurity=False).hexdigest()
"""The script's SHA1, as EVALSHA names it."""

_US = 1_000_000


def is_noscript(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis's NOSCRIPT reply (the script cache was emptied by a restart).

    redis is imported here, not at the top: a client raised ``exc``, so it is loaded already,
    while an app without a REDIS_URL never loads it for this module.
    """
    from redis.exceptions import NoScriptError

    return isinstance(exc, NoScriptError)


class ScriptClient(Protocol):
    """What the sync driver needs of a client: ``redis.Redis`` and ``RedisCluster`` fit."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """Run a cached script."""
        ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        """Run (and cache) a script."""
        ...


class AsyncScriptClient(Protocol):
    """What the async driver needs of a client: ``redis.asyncio.Redis`` fits."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]:
        """Run a cached script."""
        ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]:
        """Run (and cache) a script."""
        ...


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """The arguments of one script call, or the decision when no call is needed.

    Attributes:
        cells: the limits checked, each under its storage key.
        cost: requests counted.
        numkeys: the number of keys.
        args: ``*keys, *argv`` for EVALSHA / EVAL.
        decision: set when the request is decided without Redis (a cost no burst holds).
    """

    cells: list[Cell]
    cost: int
    numkeys: int
    args: tuple[int | str, ...]
    decision: Decision | None = None


class RedisScript:
    """The sans-I/O half of the Redis limiter: builds the call, parses the reply.

    Args:
        algorithm: GCRA (default) or the sliding-window counter.
        clock: None (default) to use the Redis server's clock; a clock only for tests and
            benchmarks that must drive time by hand (every instance would need the same one).
    """

    __slots__ = ("_algorithm", "_clock", "_mode")

    def __init__(
        self, *, algorithm: Algorithm | str = Algorithm.GCRA, clock: Clock | None = None
    ) -> None:
        """Prepare the script for ``algorithm``."""
        try:
            self._algorithm = Algorithm(algorithm)
        except ValueError:
            raise ConfigurationError(
                "algorithm", algorithm, " or ".join(repr(a.value) for a in Algorithm)
            ) from None
        self._mode = "g" if self._algorithm is Algorithm.GCRA else "s"
        self._clock = clock

    @property
    def algorithm(self) -> Algorithm:
        """The arithmetic the script runs."""
        return self._algorithm

    def prepare(self, items: Sequence[tuple[str, RateLimitPolicy]], cost: int = 1) -> ScriptCall:
        """Build the call deciding one request against every ``(key, policy)`` pair."""
        check_cost(cost)
        cells = cells_for(items, self._algorithm)
        rejected = impossible(cells, cost, self._algorithm)
        if rejected is not None:
            return ScriptCall(cells, cost, 0, (), rejected)
        now = "" if self._clock is None else str(round(self._clock() * _US))
        argv: list[int | str] = [now, cost, self._mode]
        gcra = self._algorithm is Algorithm.GCRA
        for _key, _name, limit in cells:
            if gcra:
                argv += (limit.emission_us, limit.tolerance_us, 0)
            else:
                unit = limit.sliding_unit_us
                argv += (limit.count, limit.period_us // unit, unit)
        return ScriptCall(cells, cost, len(cells), (*(c[0] for c in cells), *argv))

    def flow(
        self, items: Sequence[tuple[str, RateLimitPolicy]], cost: int = 1
    ) -> Generator[Op, Any, Decision]:
        """The decision as a sans-I/O flow: yields the EVALSHA (then an EVAL after NOSCRIPT).

        Driven by :func:`fender._flow.drive` or ``adrive``: the sync and the async limiter
        share it.
        """
        call = self.prepare(items, cost)
        if call.decision is not None:
            return call.decision
        try:
            reply = yield ("evalsha", (LUA_SHA, call.numkeys, *call.args), {})
        except Exception as exc:
            if not is_noscript(exc):
                raise
            logger.info("ratelimit.script_reload")
            reply = yield ("eval", (LUA_SCRIPT, call.numkeys, *call.args), {})
        return self.parse(call, reply)

    def parse(self, call: ScriptCall, reply: Sequence[int]) -> Decision:
        """Turn the script's reply into the decision.

        The script returns the time and the states it read; the pure module recomputes the
        figures for the headers from them, so both limiters report identically.
        """
        now, allowed = int(reply[0]), bool(reply[1])
        raw = [int(value) for value in reply[2:]]
        states: list[State]
        if self._algorithm is Algorithm.GCRA:
            states = list(raw)
        else:
            states = [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]
        decision, _ = evaluate(call.cells, states, now, call.cost, self._algorithm)
        if decision.allowed != allowed:
            # Cannot happen while the Lua mirrors gcra.py; if it does, Redis wrote (or did not
            # write) the state, so its verdict is the one to report.
            logger.error(
                "ratelimit.script_mismatch",
                extra={"key": decision.key, "script_allowed": allowed},
            )
            decision = replace(
                decision,
                allowed=allowed,
                retry_after=0.0 if allowed else (decision.retry_after or 0.0),
                reason="" if allowed else "rate limit exceeded",
            )
        return decision


class RedisLimiter(RedisScript):
    """Rate limits in Redis through a sync client (``redis.Redis`` or ``RedisCluster``).

    Example:
        >>> import redis  # doctest: +SKIP
        >>> from fender.ratelimit._policy import parse_policy
        >>> limiter = RedisLimiter(redis.Redis(socket_timeout=0.5))  # doctest: +SKIP
        >>> limiter.hit("fender:rl:{203.0.113.9}:ip", parse_policy("100/minute"))  # doctest: +SKIP
    """

    __slots__ = ("_client",)

    def __init__(
        self,
        client: ScriptClient,
        *,
        algorithm: Algorithm | str = Algorithm.GCRA,
        clock: Clock | None = None,
    ) -> None:
        """Use ``client`` (configured with short socket timeouts by the caller)."""
        super().__init__(algorithm=algorithm, clock=clock)
        self._client = client

    def _execute(self, op: Op) -> Any:
        name, args, kwargs = op
        return getattr(self._client, name)(*args, **kwargs)

    def hit(self, key: str, policy: RateLimitPolicy, cost: int = 1) -> Decision:
        """Count ``cost`` requests under ``key`` against ``policy``; see :meth:`decide`."""
        return self.decide(((key, policy),), cost)

    def decide(self, items: Sequence[tuple[str, RateLimitPolicy]], cost: int = 1) -> Decision:
        """Count one request against every ``(key, policy)`` pair in one round trip.

        Raises:
            redis.exceptions.RedisError: the client failed (connection, timeout).
        """
        return drive(self.flow(items, cost), self._execute)


class AsyncRedisLimiter(RedisScript):
    """Rate limits in Redis through an asyncio client (``redis.asyncio.Redis``).

    The same as :class:`RedisLimiter`, with ``await``.
    """

    __slots__ = ("_client",)

    def __init__(
        self,
        client: AsyncScriptClient,
        *,
        algorithm: Algorithm | str = Algorithm.GCRA,
        clock: Clock | None = None,
    ) -> None:
        """Use ``client`` (configured with short socket timeouts by the caller)."""
        super().__init__(algorithm=algorithm, clock=clock)
        self._client = client

    async def _execute(self, op: Op) -> Any:
        name, args, kwargs = op
        return await getattr(self._client, name)(*args, **kwargs)

    async def hit(self, key: str, policy: RateLimitPolicy, cost: int = 1) -> Decision:
        """Count ``cost`` requests under ``key`` against ``policy``; see :meth:`decide`."""
        return await self.decide(((key, policy),), cost)

    async def decide(self, items: Sequence[tuple[str, RateLimitPolicy]], cost: int = 1) -> Decision:
        """Count one request against every ``(key, policy)`` pair in one round trip.

        Raises:
            redis.exceptions.RedisError: the client failed (connection, timeout).
        """
        return await adrive(self.flow(items, cost), self._execute)
