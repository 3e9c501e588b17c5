"""The circuit breaker users build: the state machine with its sync and async shells on top.

The decorator, :meth:`~CircuitBreaker.call`, :meth:`~CircuitBreaker.call_async` and the context
managers are thin shells over the primitive API of :class:`~fender.resilience._machine.
BreakerMachine`; the sync and async shells differ only by an ``await``.

Example:
    >>> from fender._clock import ManualClock
    >>> breaker = CircuitBreaker("redis", BreakerConfig(failure_threshold=2), clock=ManualClock())
    >>> @breaker
    ... def ping() -> str:
    ...     raise ConnectionError("down")
    >>> for _ in range(2):
    ...     try:
    ...         ping()
    ...     except ConnectionError:
    ...         pass
    >>> breaker.state
    <BreakerState.OPEN: 'open'>
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import random
from collections.abc import Awaitable, Callable
from types import CoroutineType, TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast

from fender._clock import Clock, monotonic
from fender.errors import CallNotPermitted, ConfigurationError
from fender.resilience._config import BreakerConfig
from fender.resilience._machine import BreakerMachine
from fender.resilience._states import Permit

__all__ = ["CircuitBreaker", "Fallback"]

P = ParamSpec("P")
R = TypeVar("R")

Fallback = Callable[..., Any]
"""Called as ``fallback(exc, *args, **kwargs)`` with the failure or the CallNotPermitted."""


class _Rejection(CallNotPermitted):
    """A CallNotPermitted built on the rejection hot path: the message is formatted when read.

    The base class formats its message in ``__init__`` (about a microsecond here); a fallback
    that never reads the message should not pay for it on every rejected call. The C-level
    ``__init__`` keeps only ``.args``, ``(name, retry_after)``, which the two attributes read
    (and write, as on the base class): one costs what a plain ``Exception`` costs.
    """

    __slots__ = ()
    __init__ = BaseException.__init__

    @property
    def name(self) -> str:
        """The breaker's name."""
        return cast("str", self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def retry_after(self) -> float:
        """Seconds until the breaker may admit a call."""
        return cast("float", self.args[1])

    @retry_after.setter
    def retry_after(self, value: float) -> None:
        self.args = (self.args[0], value, *self.args[2:])

    def __str__(self) -> str:
        return str(CallNotPermitted(self.name, self.retry_after))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Rejection, self.args)


class _Entered:
    """One active ``with breaker:`` in the current context; ``outer`` is the one it nests in."""

    __slots__ = ("outer", "permit", "start")

    def __init__(self, permit: Permit, start: float, outer: _Entered | None) -> None:
        self.permit = permit
        self.start = start
        self.outer = outer


_DEFAULT: Any = object()


class CircuitBreaker(BreakerMachine):
    """A named circuit breaker; one object serves sync and async callers.

    Use it as a decorator (on a ``def`` or an ``async def``), through :meth:`call` /
    :meth:`call_async`, as ``with breaker:`` / ``async with breaker:``, or through the primitive
    API (:meth:`try_acquire` then :meth:`on_success` / :meth:`on_error` / :meth:`on_result`).

    Args:
        name: Names the breaker in errors, logs, metrics and the registry.
        config: How it trips and recovers.
        clock: Monotonic seconds; inject :class:`fender._clock.ManualClock` in tests.
        rng: Uniform floats in ``[0, 1)`` for the recovery jitter; inject a fixed one in tests.
        fallback: Called as ``fallback(exc, *args, **kwargs)`` instead of raising when a call is
            rejected (``exc`` is a :class:`~fender.errors.CallNotPermitted`) or fails with a
            recorded exception; its value is returned to the caller (awaited if awaitable in the
            async shells). Ignored exceptions always propagate.

    Example:
        >>> breaker = CircuitBreaker("users-api", fallback=lambda exc, user_id: {"id": user_id})
        >>> @breaker
        ... async def fetch_user(user_id: int) -> dict[str, int]:
        ...     raise TimeoutError
    """

    __slots__ = ("_entered", "_fallback")

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        rng: Callable[[], float] = random.random,
        fallback: Fallback | None = None,
    ) -> None:
        """Build a CLOSED breaker; see the class docstring for the arguments."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name", name, "a non-empty string")
        config = BreakerConfig() if config is None else config
        if not isinstance(config, BreakerConfig):
            raise ConfigurationError("config", config, "a BreakerConfig")
        if fallback is not None and not callable(fallback):
            raise ConfigurationError("fallback", fallback, "a callable or None")
        super().__init__(name, config, clock=clock, rng=rng)
        self._fallback = fallback
        self._entered: contextvars.ContextVar[_Entered | None] = contextvars.ContextVar(
            f"fender_breaker_{name}", default=None
        )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"

    # -- shells: decorator, call, context managers -----------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or a coroutine function with this breaker and its fallback."""
        return self.decorate(fn)

    def decorate(
        self, fn: Callable[P, R], *, fallback: Fallback | None = _DEFAULT
    ) -> Callable[P, R]:
        """Decorate ``fn`` (``def`` or ``async def``), optionally with its own ``fallback``.

        Stack it above a retry decorator, so that the retries run inside the breaker and one
        user call counts once.
        """
        chosen: Fallback | None = self._fallback if fallback is _DEFAULT else fallback
        if inspect.iscoroutinefunction(fn):
            wrapper: Callable[..., Any] = self._guard_async(fn, chosen)
        else:
            wrapper = self._guard(fn, chosen)
        return cast("Callable[P, R]", functools.update_wrapper(wrapper, fn))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker (and its fallback)."""
        return cast("R", self._guard(fn, self._fallback)(*args, **kwargs))

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker (and its fallback)."""
        return cast("R", await self._guard_async(fn, self._fallback)(*args, **kwargs))

    # The two guards are the only places where the shells differ, by an ``await`` on the call
    # and on the fallback's value. Each step is a call into the shared core; the steps are
    # written out in a closure (rather than calling a shared helper) to save a frame per call.
    # A rejection while OPEN is the lock-free test of _acquire, written out too: during an
    # outage it is every request's path. Calls and fallbacks without keyword arguments are
    # called without ``**kwargs`` (and a fallback without arguments without ``*args``), which
    # saves copying them into a new dict and tuple per call.

    def _guard(self, fn: Callable[..., Any], fallback: Fallback | None) -> Callable[..., Any]:
        acquire, errored, failed, succeeded = (
            self._acquire,
            self._errored,
            self._failed,
            self._succeeded,
        )
        clock, timer, predicate = self._now, self._timer, self._predicate

        def guarded(*args: Any, **kwargs: Any) -> Any:
            permit = self._permit
            if permit is None:
                wait = self._open_until - clock()
                decision = wait if wait > 0.0 and not self._call_listeners else acquire()
                if type(decision) is not Permit:
                    if fallback is None:
                        raise CallNotPermitted(self.name, decision)
                    rejection = _Rejection(self.name, decision)
                    if kwargs:
                        return fallback(rejection, *args, **kwargs)
                    return fallback(rejection, *args) if args else fallback(rejection)
                permit = decision
            start = timer()
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                end = timer()
                if errored(exc, permit, end - start, end) and fallback is not None:
                    return fallback(exc, *args, **kwargs)
                raise
            end = timer()
            if predicate is not None and predicate(result):
                failed(permit, end - start, end)
            else:
                succeeded(permit, end - start, end)
            return result

        return guarded

    def _guard_async(
        self, fn: Callable[..., Awaitable[Any]], fallback: Fallback | None
    ) -> Callable[..., Awaitable[Any]]:
        acquire, errored, failed, succeeded = (
            self._acquire,
            self._errored,
            self._failed,
            self._succeeded,
        )
        clock, timer, predicate = self._now, self._timer, self._predicate

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            permit = self._permit
            if permit is None:
                wait = self._open_until - clock()
                decision = wait if wait > 0.0 and not self._call_listeners else acquire()
                if type(decision) is not Permit:
                    if fallback is None:
                        raise CallNotPermitted(self.name, decision)
                    rejection = _Rejection(self.name, decision)
                    if kwargs:
                        value = fallback(rejection, *args, **kwargs)
                    else:
                        value = fallback(rejection, *args) if args else fallback(rejection)
                    return (await value) if _is_awaitable(value) else value
                permit = decision
            start = timer()
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                end = timer()
                if errored(exc, permit, end - start, end) and fallback is not None:
                    value = fallback(exc, *args, **kwargs)
                    return (await value) if _is_awaitable(value) else value
                raise
            end = timer()
            if predicate is not None and predicate(result):
                failed(permit, end - start, end)
            else:
                succeeded(permit, end - start, end)
            return result

        return guarded

    def __enter__(self) -> Permit:
        """Admit the block or raise :class:`~fender.errors.CallNotPermitted`; no fallback here."""
        permit = self._permit
        if permit is None:
            decision = self._acquire()
            if not isinstance(decision, Permit):
                raise CallNotPermitted(self.name, decision)
            permit = decision
        # Per context (thread or task), so that concurrent and nested blocks do not mix.
        entered = self._entered
        entered.set(_Entered(permit, self._timer(), entered.get()))
        return permit

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Report the block's outcome; never suppresses its exception."""
        frame = self._entered.get()
        if frame is None:
            raise RuntimeError(f"circuit breaker {self.name!r} exited without entering")
        self._entered.set(frame.outer)
        end = self._timer()
        if exc is None:
            self._succeeded(frame.permit, end - frame.start, end)
        else:
            self._errored(exc, frame.permit, end - frame.start, end)

    async def __aenter__(self) -> Permit:
        """Same as ``with``: admitting a call does no I/O."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Same as ``with``."""
        self.__exit__(exc_type, exc, traceback)


# What a sync fallback mostly returns; no value of these types is awaitable.
_PLAIN: Final = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})


def _is_awaitable(value: object) -> bool:
    """``inspect.isawaitable(value)``, answered without it for coroutines and plain values.

    ``inspect.isawaitable`` costs about 300 ns on a value that is not awaitable (an ABC check),
    as much as the rest of a rejection. Anything but a coroutine or a plain value still goes
    through it (not through ``hasattr``, which would run a user's ``__getattr__``).
    """
    kind = type(value)
    return kind is CoroutineType or (kind not in _PLAIN and inspect.isawaitable(value))
