"""Rate-limit policies parsed from strings such as ``"100/minute burst 200"``, and decisions.

A policy is parsed once at start-up into frozen dataclasses that carry every derived number
the per-request path needs (emission interval, tolerance, storage suffixes, header values), so
a decision only reads precomputed fields. Bad strings raise :class:`ConfigurationError` naming
the setting and showing the expected form.

Grammar (case-insensitive, spaces optional)::

    policy := limit (";" limit)*
    limit  := COUNT ("/" | "per") [MULTIPLIER] UNIT ["burst" BURST]
    UNIT   := second | minute | hour | day   (also s, sec, m, min, h, hr, d and plurals)

Example:
    >>> policy = parse_policy("10/second; 1000/hour")
    >>> str(policy)
    '10/second; 1000/hour'
    >>> parse_limit("5/10seconds burst 8").emission_us
    2000000
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Literal

from fender._bounded import BOUNDED_MAX, bounded
from fender.errors import ConfigurationError

__all__ = [
    "FALLBACKS",
    "Algorithm",
    "Decision",
    "FallbackMode",
    "KeyBuilder",
    "Limit",
    "LimitStatus",
    "RateLimitPolicy",
    "parse_limit",
    "parse_policy",
]

FallbackMode = Literal["local", "open", "closed"]
"""When no shared store answers: limit in memory (``local``), admit (``open``), reject."""
FALLBACKS: Final = ("local", "open", "closed")

EXPECTED_FORM = (
    'a rate such as "100/minute", "100/minute burst 200", "5/10seconds" '
    'or several separated by ";" ("10/second; 1000/hour")'
)
# Lua numbers are doubles: every microsecond quantity the Redis script handles must stay an
# exact integer there, so the products it forms are bounded by 2**53.
MAX_EXACT = 2**53
_SLIDING_EXACT = 2**50
MAX_PERIOD_SECONDS = 366 * 86_400
_US = 1_000_000

_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86_400,
    "day": 86_400,
    "days": 86_400,
}
# Largest first: str() picks the largest unit that divides the period evenly.
_CANONICAL = (("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))
_LIMIT_RE = re.compile(
    r"""
    \s*(?P<count>\d{1,12})\s*
    (?:/|\s+per\s+|per\s+)\s*
    (?P<mult>\d{1,9})?\s*
    (?P<unit>[a-z]+)
    (?:\s+burst\s+(?P<burst>\d{1,12}))?
    \s*
    """,
    re.VERBOSE | re.IGNORECASE,
)
_NAME_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


class Algorithm(StrEnum):
    """The arithmetic a limiter runs; both are implemented once and mirrored in Lua."""

    GCRA = "gcra"
    """Generic cell rate algorithm: rate plus burst, one stored integer per key (the default)."""
    SLIDING_WINDOW = "sliding"
    """Sliding-window counter: two fixed windows, the previous one weighted by overlap.

    It admits ``count`` per trailing period and has no burst of its own: ``burst`` is ignored.
    """


# The storage key letter of each algorithm (see RateLimitPolicy.cells).
_LETTERS: Mapping[Algorithm, str] = {Algorithm.GCRA: "g", Algorithm.SLIDING_WINDOW: "s"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Limit:
    """``count`` requests per ``period`` seconds, at most ``burst`` at once.

    Without a burst, N per period admits N at once (``burst`` defaults to ``count``). The
    derived fields are integers of microseconds, the unit of all the arithmetic.

    Attributes:
        count: requests admitted per period at the sustained rate.
        period: the period in whole seconds (1 second to 366 days).
        burst: requests admitted at once from an idle key (GCRA); defaults to ``count``.
        period_us: the period in microseconds.
        emission_us: GCRA emission interval, ``ceil(period_us / count)``; rounding up means
            the sustained rate never exceeds ``count`` per period.
        tolerance_us: GCRA delay-variation tolerance, ``burst * emission_us``.
        sliding_unit_us: the sliding window's time unit: 1 microsecond, or a power of ten
            more for limits so large that their products would lose exactness in Lua.
        sliding_window: the period in that unit.
    """

    count: int
    period: int
    burst: int = 0
    period_us: int = field(init=False, repr=False, compare=False)
    emission_us: int = field(init=False, repr=False, compare=False)
    tolerance_us: int = field(init=False, repr=False, compare=False)
    sliding_unit_us: int = field(init=False, repr=False, compare=False)
    sliding_window: int = field(init=False, repr=False, compare=False)
    # str(limit), built once: every rejection quotes it in its reason.
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate and derive the microsecond figures."""
        _check_int("count", self.count, 1)
        _check_int("period", self.period, 1)
        if self.period > MAX_PERIOD_SECONDS:
            raise ConfigurationError("period", self.period, "at most 366 days in seconds")
        if self.burst == 0:
            object.__setattr__(self, "burst", self.count)
        _check_int("burst", self.burst, 1)
        period_us = self.period * _US
        if self.count > period_us:
            raise ConfigurationError("count", self.count, "at most one request per microsecond")
        emission_us = -(-period_us // self.count)
        tolerance_us = self.burst * emission_us
        if tolerance_us + period_us >= MAX_EXACT:
            raise ConfigurationError(
                "burst", self.burst, "a burst whose window fits in 2**53 microseconds"
            )
        # The sliding window multiplies counts by window lengths; a coarser time unit keeps
        # those products far below 2**53 for large limits over long periods.
        unit = next(
            (10**k for k in range(7) if self.count * (period_us // 10**k) < _SLIDING_EXACT),
            0,
        )
        if not unit:
            raise ConfigurationError("count", self.count, "a smaller count for this period")
        object.__setattr__(self, "sliding_unit_us", unit)
        object.__setattr__(self, "sliding_window", period_us // unit)
        object.__setattr__(self, "period_us", period_us)
        object.__setattr__(self, "emission_us", emission_us)
        object.__setattr__(self, "tolerance_us", tolerance_us)
        unit_name, seconds = next(pair for pair in _CANONICAL if self.period % pair[1] == 0)
        mult = self.period // seconds
        per = unit_name if mult == 1 else f"{mult}{unit_name}s"
        text = f"{self.count}/{per}"
        burst = "" if self.burst == self.count else f" burst {self.burst}"
        object.__setattr__(self, "_text", text + burst)

    def capacity(self, algorithm: Algorithm) -> int:
        """The largest cost one request may have under ``algorithm``; more is never admitted."""
        return self.burst if algorithm is Algorithm.GCRA else self.count

    def __str__(self) -> str:
        """The canonical rate string, which :func:`parse_limit` turns back into this limit."""
        return self._text


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimitPolicy:
    """One or more limits applied together under a ``name`` (every one must admit a request).

    Attributes:
        name: the policy name shown in the ``RateLimit`` and ``RateLimit-Policy`` headers.
        limits: the limits; no two may share a period.
        item_names: the header name of each limit (``name`` alone for a single limit, else
            ``name:<period>s``).
        policy_header: the ``RateLimit-Policy`` header value, built once, e.g.
            ``"default";q=100;w=60``.
        cells: per algorithm, one ``(storage key suffix, item name, limit)`` per limit; a
            limit's state is stored under the caller's key plus its suffix, ``:<g|s><period>``
            (the letter keeps GCRA and sliding-window state apart, the period keeps the
            limits of one policy apart). Read-only.
        fallback: what to do with this policy when the shared store does not answer (None:
            the configuration's ``fallback``).
        exact: every request of this policy is decided in the shared store, in lease mode
            too (no lease taken: never over the limit; a login, a paid quota).
    """

    name: str = "default"
    limits: tuple[Limit, ...]
    fallback: FallbackMode | None = None
    exact: bool = False
    item_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    policy_header: str = field(init=False, repr=False, compare=False)
    cells: Mapping[Algorithm, tuple[tuple[str, str, Limit], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Validate the name and limits; build the header values."""
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ConfigurationError(
                "name", self.name, "1 to 64 characters of letters, digits and _ . : / -"
            )
        limits = tuple(self.limits)
        if not limits or not all(isinstance(limit, Limit) for limit in limits):
            raise ConfigurationError("limits", self.limits, "one or more Limit objects")
        periods = [limit.period for limit in limits]
        if len(set(periods)) != len(periods):
            raise ConfigurationError("limits", str_limits(limits), "no two limits per period")
        object.__setattr__(self, "limits", limits)
        if self.fallback is not None and self.fallback not in FALLBACKS:
            raise ConfigurationError("fallback", self.fallback, " or ".join(FALLBACKS))
        if not isinstance(self.exact, bool):
            raise ConfigurationError("exact", self.exact, "True or False")
        if len(limits) == 1:
            names: tuple[str, ...] = (self.name,)
        else:
            names = tuple(f"{self.name}:{limit.period}s" for limit in limits)
        object.__setattr__(self, "item_names", names)
        header = ", ".join(
            f'"{name}";q={limit.count};w={limit.period}'
            for name, limit in zip(names, limits, strict=True)
        )
        object.__setattr__(self, "policy_header", header)
        cells = {
            algorithm: tuple(
                (f":{_LETTERS[algorithm]}{limit.period}", name, limit)
                for name, limit in zip(names, limits, strict=True)
            )
            for algorithm in Algorithm
        }
        object.__setattr__(self, "cells", cells)

    def __str__(self) -> str:
        """The canonical rate string; ``parse_policy(str(p), name=p.name) == p``."""
        return str_limits(self.limits)


def str_limits(limits: tuple[Limit, ...]) -> str:
    """Join limits into one rate string."""
    return "; ".join(str(limit) for limit in limits)


def parse_limit(text: str, *, field: str = "rate") -> Limit:
    """Parse one limit such as ``"100/minute burst 200"``.

    Args:
        text: the rate string.
        field: the setting name to quote in the error (e.g. ``FENDER_RATE_LIMIT``).

    Raises:
        ConfigurationError: the string is not a valid limit.
    """
    if not isinstance(text, str):
        raise ConfigurationError(field, text, EXPECTED_FORM)
    match = _LIMIT_RE.fullmatch(text)
    if match is None:
        raise ConfigurationError(field, text, EXPECTED_FORM)
    seconds = _UNITS.get(match["unit"].lower())
    if seconds is None:
        raise ConfigurationError(
            field, text, f"{EXPECTED_FORM}; the unit is second, minute, hour or day"
        )
    mult = int(match["mult"]) if match["mult"] else 1
    if match["burst"] is not None and int(match["burst"]) == 0:
        raise ConfigurationError(field, text, f"{EXPECTED_FORM}, with a burst of at least 1")
    try:
        return Limit(
            count=int(match["count"]),
            period=mult * seconds,
            burst=int(match["burst"]) if match["burst"] else 0,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(field, text, f"{EXPECTED_FORM}, with {exc}") from exc


def parse_policy(text: str, *, name: str = "default", field: str = "rate") -> RateLimitPolicy:
    """Parse ``"10/second; 1000/hour"`` into a :class:`RateLimitPolicy` called ``name``.

    Raises:
        ConfigurationError: the string (or one of its limits) is invalid.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(field, text, EXPECTED_FORM)
    parts = text.split(";")
    if parts[-1].strip() == "":  # a trailing ";" is harmless
        parts.pop()
    try:
        limits = tuple(parse_limit(part, field=field) for part in parts)
    except ConfigurationError as exc:
        # Quote the whole setting, not just the part that failed.
        raise ConfigurationError(field, text, exc.expected) from exc
    try:
        return RateLimitPolicy(name=name, limits=limits)
    except ConfigurationError as exc:
        raise ConfigurationError(field, text, f"{EXPECTED_FORM}, with {exc}") from exc


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(name, value, f"an integer >= {minimum}")


# The results below are plain slotted dataclasses, not frozen ones: a frozen dataclass
# assigns each field through object.__setattr__, which measured at about 2 us per decision,
# as much as the whole decision otherwise costs. Treat them as read-only.


@dataclass(slots=True)
class LimitStatus:
    """How one limit under one key stands after a decision (read-only).

    Attributes:
        key: the storage key of this limit (the caller's key plus a suffix).
        name: the policy item name for the headers.
        limit: the limit itself.
        allowed: whether this limit alone would admit the request.
        remaining: requests this limit admits right now.
        reset_after: seconds until this limit is fully replenished (the key's expiry).
        retry_after: seconds until this limit would admit the request (0 when allowed).
    """

    key: str
    name: str
    limit: Limit
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


class _SingleLimitSlot:
    """Gives :class:`Decision` a slot outside its dataclass fields (see one_limit_decision).

    Being no field, it takes no part in ``__init__``, ``repr``, ``==``, ``asdict`` or
    ``replace``.
    """

    __slots__ = ("_single",)
    _single: Limit


@dataclass(slots=True)
class Decision(_SingleLimitSlot):
    """The outcome of one rate-limit decision over every limit that applies (read-only).

    The headline fields come from the binding limit: on rejection, the one that needs the
    longest wait; on admission, the one with the fewest remaining requests.

    Attributes:
        allowed: True when every limit admitted the request (and it was counted).
        limit: the binding limit's quota (``q`` in ``RateLimit-Policy``).
        window: the binding limit's period in seconds (``w``).
        remaining: requests the binding limit admits now (``r`` in ``RateLimit``).
        reset_after: seconds until the binding limit is fully replenished (``t``).
        retry_after: seconds to wait before this request could pass (0.0 when allowed);
            None when no wait can help because the cost exceeds a limit's burst.
        policy: the binding limit's item name for the headers.
        key: the binding limit's storage key.
        reason: why the request was rejected ("" when allowed).
        statuses: every limit checked, in order.
    """

    allowed: bool
    limit: int
    window: int
    remaining: int
    reset_after: float
    retry_after: float | None
    policy: str
    key: str
    reason: str = ""
    statuses: tuple[LimitStatus, ...] = ()

    def header_value(self) -> str:
        """The ``RateLimit`` header value, e.g. ``"default";r=42;t=17``."""
        return f'"{self.policy}";r={self.remaining};t={math.ceil(self.reset_after)}'

    def retry_after_header(self) -> str | None:
        """The ``Retry-After`` value in whole seconds (rounded up); None when not applicable."""
        if self.allowed or self.retry_after is None:
            return None
        return str(max(1, math.ceil(self.retry_after)))

    if not TYPE_CHECKING:  # hidden from mypy, which would accept any attribute name otherwise

        def __getattr__(self, name: str) -> tuple[LimitStatus, ...]:
            # Python calls this only for a slot never assigned: the statuses of a decision
            # from one_limit_decision(), built when first read and kept.
            if name != "statuses":
                raise AttributeError(name)
            limit = self._single
            status = LimitStatus(
                self.key,
                self.policy,
                limit,
                self.allowed,
                self.remaining,
                self.reset_after,
                self.retry_after,
            )
            self.statuses = (status,)
            return self.statuses


_new_decision = Decision.__new__


def one_limit_decision(  # noqa: PLR0917  (positional: keywords cost time per request)
    limit: Limit,
    name: str,
    key: str,
    allowed: bool,  # noqa: FBT001  (see above)
    remaining: int,
    reset_after: float,
    retry_after: float,
    reason: str,
) -> Decision:
    """The :class:`Decision` over the single limit ``limit``, its ``statuses`` built on demand.

    Equal to ``Decision(allowed, limit.count, limit.period, remaining, reset_after,
    retry_after, name, key, reason, (LimitStatus(key, name, limit, allowed, remaining,
    reset_after, retry_after),))``. Most callers never read ``statuses``; building that
    status and running the dataclass ``__init__`` cost about a third of a decision, so this
    sets the slots directly and leaves ``statuses`` to ``Decision.__getattr__``.
    """
    decision = _new_decision(Decision)
    decision.allowed = allowed
    decision.limit = limit.count
    decision.window = limit.period
    decision.remaining = remaining
    decision.reset_after = reset_after
    decision.retry_after = retry_after
    decision.policy = name
    decision.key = key
    decision.reason = reason
    # This module's own private slot; mypy misses that Decision inherits it.
    decision._single = limit  # type: ignore[misc]  # noqa: SLF001
    return decision


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyBuilder:
    """Builds storage keys whose hash tag puts all of one request's keys in one Cluster slot.

    A Redis Cluster runs a script only if all its keys hash to one slot; Redis hashes only the
    part between the first ``{`` and the next ``}``. Build every key a request touches with the
    same ``tag`` (usually the client identity) and they share a slot. Braces and ``%`` in the
    tag are percent-encoded so that a hostile value cannot move the tag.

    Example:
        >>> keys = KeyBuilder()
        >>> keys.build("203.0.113.9", "route", "/login")
        'fender:rl:{203.0.113.9}:route:/login'
    """

    prefix: str = "fender:rl"

    def __post_init__(self) -> None:
        """Reject a prefix that would itself contain a hash tag."""
        if not isinstance(self.prefix, str) or "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError("prefix", self.prefix, "a string without { or }")

    def build(self, tag: str, *parts: str) -> str:
        """Return ``prefix:{tag}:part:part...``; an overlong tag or part is shortened.

        A client chooses the raw path (and may choose what a custom key function reads):
        past :data:`~fender._bounded.BOUNDED_MAX` characters a piece keeps its start plus a
        digest of the whole, so that distinct values stay distinct, every instance derives the
        same key, and 100,000 keys cannot hold 60 kB each.
        """
        tag = bounded(tag)
        safe = tag.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") or "%00"
        if any(len(part) > BOUNDED_MAX for part in parts):
            parts = tuple(bounded(part) for part in parts)
        return ":".join((self.prefix, f"{{{safe}}}", *parts))
