"""Lifecycle of a serving process: STARTING -> READY -> DRAINING -> STOPPED.

A pure state machine (no I/O; an injected clock): readiness is 503 unless READY, drain is
one-way, and every transition is reported to listeners (the metric and the log event).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Final

from fender._clock import Clock, monotonic

__all__ = ["CLOSING_CONNECTIONS", "STOP_ACCEPTING", "Lifecycle", "State", "Transition"]

CLOSING_CONNECTIONS: Final = threading.Event()
"""Set when this process is about to exit on its own (the memory guard recycling a worker).

Its responses then say ``Connection: close``, so that keep-alive clients open their next
request elsewhere instead of racing the shutdown on a connection about to close.
"""

STOP_ACCEPTING: Final[list[Callable[[], None]]] = []
"""How this process's server stops accepting connections (fender's uvicorn worker adds one).

A worker about to exit on its own calls them first: the connections it has accepted get their
answers, and new ones wait in the listen queue for the worker that replaces it, instead of
being accepted and then closed unread by the shutdown.
"""


class State(enum.StrEnum):
    """Where the process is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"

    @property
    def gauge(self) -> int:
        """0 starting, 1 ready, 2 draining, 3 stopped (for ``fender_lifecycle_state``)."""
        return _ORDER[self]


_ORDER: Final = {State.STARTING: 0, State.READY: 1, State.DRAINING: 2, State.STOPPED: 3}
# Allowed moves; anything else is ignored (a late "ready" after a drain must not undo it).
_ALLOWED: Final = {
    State.STARTING: frozenset({State.READY, State.DRAINING, State.STOPPED}),
    State.READY: frozenset({State.DRAINING, State.STOPPED}),
    State.DRAINING: frozenset({State.STOPPED}),
    # Only through restart(): a server may run the same app's lifespan again (a test client
    # opened twice); nothing else leaves STOPPED.
    State.STOPPED: frozenset[State](),
}

Transition = tuple[State, State, str]
Listener = Callable[[State, State, str], None]


class Lifecycle:
    """The lifecycle state of this process; thread-safe."""

    def __init__(self, clock: Clock = monotonic) -> None:
        """Start in STARTING."""
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.STARTING
        self.draining = False
        """True in DRAINING and STOPPED: responses should close their connection.

        A plain attribute, not a property: every response reads it.
        """
        self.broken: str | None = None
        """Why the process cannot serve although it runs (a failed WSGI start); liveness fails
        while it is set."""
        self._since = clock()
        self._started = self._since
        self._listeners: list[Listener] = []

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def ready(self) -> bool:
        """True only in READY: what readiness reports before checks are considered."""
        return self._state is State.READY

    def uptime(self) -> float:
        """Seconds since the lifecycle began."""
        return self._clock() - self._started

    def in_state_for(self) -> float:
        """Seconds since the last transition."""
        return self._clock() - self._since

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old, new, reason)`` after each transition."""
        self._listeners.append(listener)

    def move(self, target: State, reason: str = "") -> bool:
        """Go to ``target`` if allowed from the current state; True when it moved."""
        with self._lock:
            old = self._state
            if target not in _ALLOWED[old]:
                return False
            self._state = target
            self.draining = target in (State.DRAINING, State.STOPPED)
            self._since = self._clock()
        for listener in tuple(self._listeners):
            listener(old, target, reason)
        return True

    def mark_ready(self, reason: str = "startup complete") -> bool:
        """STARTING -> READY."""
        return self.move(State.READY, reason)

    def drain(self, reason: str = "drain requested") -> bool:
        """-> DRAINING: readiness turns 503 while requests still succeed."""
        return self.move(State.DRAINING, reason)

    def stop(self, reason: str = "shutdown") -> bool:
        """-> STOPPED."""
        return self.move(State.STOPPED, reason)

    def restart(self, reason: str = "started again") -> bool:
        """STOPPED -> STARTING, for an app whose lifespan runs again in the same process.

        A server runs one lifespan per process; a test client may run several in a row
        (``with TestClient(app)`` twice), and each must start from STARTING, not stay STOPPED.
        """
        with self._lock:
            old = self._state
            if old is not State.STOPPED:
                return False
            self._state = State.STARTING
            self.draining = False
            self.broken = None
            self._since = self._clock()
        for listener in tuple(self._listeners):
            listener(old, State.STARTING, reason)
        return True
