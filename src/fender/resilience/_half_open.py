"""The trials of HALF_OPEN: a few calls let through at once, whose outcomes decide the state.

:class:`TrialSlots` owns the permits in flight and the successes counted during one HALF_OPEN
spell; the breaker calls it under its lock. One failed trial reopens the breaker, so failures
need no count: the breaker trips on the first one and the next spell starts from zero.
"""

from __future__ import annotations

from fender.resilience._states import Permit

__all__ = ["TrialSlots"]


class TrialSlots:
    """The trial calls of one HALF_OPEN spell: slots in flight and successes so far.

    Args:
        limit: Trials allowed in flight at once (``permitted_calls_in_half_open``).
        needed: Successful trials that close the breaker (``success_threshold``).
        timeout: Seconds after which a trial never reported back frees its slot.
    """

    __slots__ = ("_in_flight", "_limit", "_needed", "_timeout", "successes")

    def __init__(self, *, limit: int, needed: int, timeout: float) -> None:
        """Start with no trial in flight."""
        self._limit = limit
        self._needed = needed
        self._timeout = timeout
        self._in_flight: list[Permit] = []
        self.successes = 0

    def clear(self) -> None:
        """Start a new HALF_OPEN spell: no trial in flight, no success counted."""
        self._in_flight = []
        self.successes = 0

    def take(self, generation: int, now: float) -> Permit | float:
        """A trial permit for state ``generation`` if a slot is free, else the seconds to wait."""
        slots = self._in_flight
        timeout = self._timeout
        if slots and now - slots[0].acquired_at >= timeout:
            # Lost trials (never reported back) free their slot instead of wedging HALF_OPEN.
            slots[:] = [slot for slot in slots if now - slot.acquired_at < timeout]
        if len(slots) < self._limit:
            permit = Permit(generation, trial=True, acquired_at=now)
            slots.append(permit)
            return permit
        return max(slots[0].acquired_at + timeout - now, 0.0)

    def free(self, permit: Permit | None) -> None:
        """Free the slot of a trial that reported back (the oldest one if no permit is given)."""
        slots = self._in_flight
        if permit is None:
            # The caller did not pass its permit back: free the oldest slot.
            if slots:
                del slots[0]
        elif permit in slots:
            slots.remove(permit)

    def succeeded(self, permit: Permit | None) -> bool:
        """Free the trial's slot and count its success; whether enough trials have succeeded."""
        self.free(permit)
        self.successes += 1
        return self.successes >= self._needed

    def load(self, now: float) -> tuple[int, float]:
        """The trials in flight at ``now`` (lost ones aside) and the seconds until a slot frees."""
        timeout = self._timeout
        live = [slot for slot in self._in_flight if now - slot.acquired_at < timeout]
        full = len(live) >= self._limit
        return len(live), live[0].acquired_at + timeout - now if full else 0.0
