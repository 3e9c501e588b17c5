"""Threshold alerts: pending, firing, resolved; each transition said once.

Pure: readings in, transitions out, on the caller's clock. A reading is the value of one alert's
signal now, keyed by the alert's name and subject (a breaker's or a check's name for the alerts
that have one). An alert turns *pending* when its reading crosses the threshold, *fires* once
the reading has stayed across for the rule's ``for_seconds`` (as a Prometheus rule's ``for``),
and *resolves* at the first reading that is not across, or absent (no traffic, a breaker gone).
A pending alert that falls back is forgotten without a word.

The book's state is plain data (:meth:`AlertBook.state`, :meth:`AlertBook.restore`): under
gunicorn the worker evaluating the alerts shares it through a file, and the worker that takes
over after it continues from it instead of firing again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

__all__ = ["Alert", "AlertBook", "Rule", "Transition"]

Severity = Literal["warning", "critical"]
Key = tuple[str, str | None]
KEEP_RESOLVED: Final = 10


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One alert: across ``threshold`` (``>``; ``>=`` when ``inclusive``) for ``for_seconds``.

    ``message`` says it in words from the reading, the threshold and the subject.
    """

    name: str
    severity: Severity
    threshold: float
    for_seconds: float
    message: Callable[[float, float, str | None], str]
    inclusive: bool = False

    def across(self, value: float | None) -> bool:
        """True when ``value`` is across the threshold."""
        if value is None:
            return False
        return value >= self.threshold if self.inclusive else value > self.threshold


@dataclasses.dataclass(slots=True)
class Alert:
    """A pending or firing alert: since when it is across, since when it fires, its reading."""

    name: str
    subject: str | None
    severity: Severity
    across_since: float
    value: float
    threshold: float
    message: str
    firing_since: float | None = None
    resolved_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (the shared state file, /status)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """An alert that fired or resolved at this evaluation."""

    kind: Literal["firing", "resolved"]
    alert: Alert


class AlertBook:
    """The alerts of a service under a set of rules."""

    def __init__(self, rules: Mapping[str, Rule], *, keep_resolved: int = KEEP_RESOLVED) -> None:
        """``rules`` by name; ``keep_resolved``: resolved alerts remembered for /status."""
        self.rules = dict(rules)
        self._keep = keep_resolved
        self._alerts: dict[Key, Alert] = {}
        self._resolved: list[Alert] = []

    def evaluate(self, readings: Mapping[Key, float | None], now: float) -> list[Transition]:
        """Judge ``readings`` at ``now``; the alerts that fired or resolved, in key order.

        A key of a pending or firing alert missing from ``readings`` reads as absent.
        """
        transitions: list[Transition] = []
        for key in sorted({*readings, *self._alerts}, key=_order):
            name, subject = key
            rule = self.rules.get(name)
            if rule is None:
                continue
            value = readings.get(key)
            alert = self._alerts.get(key)
            if not rule.across(value):
                if alert is not None:
                    del self._alerts[key]
                    if alert.firing_since is not None:
                        alert.resolved_at = now
                        self._resolved.insert(0, alert)
                        del self._resolved[self._keep :]
                        transitions.append(Transition("resolved", alert))
                continue
            assert value is not None  # across() said so
            message = rule.message(value, rule.threshold, subject)
            if alert is None:
                alert = self._alerts[key] = Alert(
                    name, subject, rule.severity, now, value, rule.threshold, message
                )
            alert.value, alert.message = value, message
            if alert.firing_since is None and now - alert.across_since >= rule.for_seconds:
                alert.firing_since = now
                transitions.append(Transition("firing", alert))
        return transitions

    def firing(self) -> list[Alert]:
        """The firing alerts, critical first, then the oldest first."""
        active = [a for a in self._alerts.values() if a.firing_since is not None]
        return sorted(
            active,
            key=lambda a: (a.severity != "critical", a.firing_since, _order((a.name, a.subject))),
        )

    def resolved(self) -> list[Alert]:
        """The last resolved alerts, newest first."""
        return list(self._resolved)

    def state(self) -> dict[str, Any]:
        """Everything the book knows, as plain data."""
        return {
            "alerts": [a.as_dict() for a in self._alerts.values()],
            "resolved": [a.as_dict() for a in self._resolved],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` of another book (entries of unknown shape are skipped)."""
        alerts: dict[Key, Alert] = {}
        for entry in state.get("alerts", ()):
            alert = _alert(entry)
            if alert is not None and alert.name in self.rules:
                alerts[alert.name, alert.subject] = alert
        resolved = [a for a in map(_alert, state.get("resolved", ())) if a is not None]
        self._alerts, self._resolved = alerts, resolved[: self._keep]


def _order(key: Key) -> tuple[str, str]:
    return key[0], key[1] or ""


def _alert(entry: object) -> Alert | None:
    try:
        return Alert(**entry)  # type: ignore[arg-type]
    except TypeError:
        return None
