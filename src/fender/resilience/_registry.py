"""Named circuit breakers, one per dependency, shared across the process.

The registry is where the metrics layer and the ``/circuit-breaker`` endpoint find breakers: a
listener added to the registry is attached to every breaker it holds and to every breaker it
creates later, so nothing in this package needs to import prometheus.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator

from fender._clock import Clock, monotonic
from fender.errors import ConfigurationError
from fender.resilience._breaker import CircuitBreaker, Fallback
from fender.resilience._config import BreakerConfig
from fender.resilience._events import BreakerSnapshot, CallEvent, StateTransition

__all__ = ["BreakerRegistry", "default_registry"]


class BreakerRegistry:
    """Circuit breakers by name, created on first use with a shared clock and random source.

    Example:
        >>> registry = BreakerRegistry()
        >>> redis = registry.get_or_create("redis", BreakerConfig(failure_threshold=3))
        >>> registry.get_or_create("redis") is redis
        True
        >>> [breaker.name for breaker in registry]
        ['redis']
    """

    def __init__(
        self,
        default_config: BreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Create breakers with ``default_config`` unless given one; inject ``clock``/``rng``."""
        self.default_config = BreakerConfig() if default_config is None else default_config
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._transition_listeners: list[Callable[[StateTransition], object]] = []
        self._call_listeners: list[Callable[[CallEvent], object]] = []

    def get_or_create(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Fallback | None = None,
    ) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it with ``config`` on first use.

        Raises:
            ConfigurationError: ``config`` differs from the existing breaker's; two parts of an
                app silently sharing a breaker configured two ways is a bug worth failing on.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is not None:
                if config is not None and config != breaker.config:
                    raise ConfigurationError(
                        "config",
                        config,
                        f"the config breaker {name!r} was created with ({breaker.config!r})",
                    )
                return breaker
            breaker = CircuitBreaker(
                name,
                self.default_config if config is None else config,
                clock=self._clock,
                rng=self._rng,
                fallback=fallback,
            )
            for transition_listener in self._transition_listeners:
                breaker.add_transition_listener(transition_listener)
            for call_listener in self._call_listeners:
                breaker.add_call_listener(call_listener)
            self._breakers[name] = breaker
            return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """Return the breaker called ``name``, or ``None``."""
        return self._breakers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        """Iterate over the breakers in creation order (a copy: safe while others register)."""
        with self._lock:
            return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def snapshots(self) -> list[BreakerSnapshot]:
        """One snapshot per breaker, in creation order."""
        return [breaker.snapshot() for breaker in self]

    def add_transition_listener(self, listener: Callable[[StateTransition], object]) -> None:
        """Attach ``listener`` to every breaker, present and future, for state changes."""
        with self._lock:
            self._transition_listeners.append(listener)
            for breaker in self._breakers.values():
                breaker.add_transition_listener(listener)

    def add_call_listener(self, listener: Callable[[CallEvent], object]) -> None:
        """Attach ``listener`` to every breaker, present and future, for call outcomes."""
        with self._lock:
            self._call_listeners.append(listener)
            for breaker in self._breakers.values():
                breaker.add_call_listener(listener)


default_registry = BreakerRegistry()
"""The process-wide registry fender's own components (Redis client, health checks) use."""
