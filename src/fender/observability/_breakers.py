"""Circuit breakers as Prometheus metrics: state, call outcomes and transitions.

:func:`instrument` subscribes to a :class:`~fender.resilience.BreakerRegistry`, so every breaker
it holds, now or later, reports:

* ``circuit_breaker_state{name}``: 0 closed, 1 half-open, 2 open (forced open reads as open;
  disabled and metrics-only as closed). Under gunicorn the workers' values combine by ``max``
  (``livemax``): the panel shows open if any live worker has it open.
* ``circuit_breaker_calls_total{name,outcome}``: success, failure, ignored, rejected.
* ``circuit_breaker_transitions_total{name,from,to}``: every state change.

Cost: one label lookup and one increment per call (a call listener); a closed breaker with no
listener attached pays nothing, so applications that do not want call counts need not call this.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from fender.observability import _metrics as metrics
from fender.resilience import BreakerRegistry, CallEvent, StateTransition, default_registry

__all__ = ["instrument"]

_lock = threading.Lock()
_instrumented: weakref.WeakSet[BreakerRegistry] = weakref.WeakSet()


class _BreakerMetrics:
    """The three metrics and their cached children."""

    def __init__(self, registry: BreakerRegistry) -> None:
        self.state = metrics.gauge(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ("name",),
            multiprocess_mode="livemax",
        )
        self.calls = metrics.LabelGuard(
            metrics.counter(
                "circuit_breaker_calls",
                "Calls through a circuit breaker, by outcome (success, failure, ignored, "
                "rejected).",
                ("name", "outcome"),
            )
        )
        self.transitions = metrics.LabelGuard(
            metrics.counter(
                "circuit_breaker_transitions",
                "Circuit breaker state changes, by the state left and the state entered.",
                ("name", "from", "to"),
            )
        )
        self._states: dict[str, Any] = {}
        self._registry = registry

    def state_child(self, name: str) -> Any:
        child = self._states.get(name)
        if child is None:
            child = self._states[name] = self.state.labels(name)
            # First sight of a breaker created after instrument(): publish its state now.
            breaker = self._registry.get(name)
            if breaker is not None:
                child.set(breaker.state.gauge)
        return child

    def on_transition(self, event: StateTransition) -> None:
        self.state_child(event.name).set(event.to_state.gauge)
        self.transitions.child(event.name, event.from_state.value, event.to_state.value).inc()

    def on_call(self, event: CallEvent) -> None:
        if event.name not in self._states:
            self.state_child(event.name)
        self.calls.child(event.name, event.outcome.value).inc()


def instrument(registry: BreakerRegistry = default_registry) -> None:
    """Export the breakers of ``registry`` as metrics; calling it again changes nothing.

    Example:
        >>> from fender.resilience import BreakerRegistry
        >>> registry = BreakerRegistry()
        >>> instrument(registry)
        >>> instrument(registry)  # idempotent: no double counting
    """
    with _lock:
        if registry in _instrumented:
            return
        bound = _BreakerMetrics(registry)
        registry.add_transition_listener(bound.on_transition)
        registry.add_call_listener(bound.on_call)
        for breaker in registry:
            bound.state_child(breaker.name)
        _instrumented.add(registry)
