"""The monitor's alert rules, from the settings (the thresholds operators already use)."""

from __future__ import annotations

from fender.monitor._alerts import Rule
from fender.settings import Settings

__all__ = ["rules"]


def _error_rate(value: float, threshold: float, _subject: str | None) -> str:
    return f"5xx in {value:.1%} of requests over the last minute (threshold {threshold:.0%})"


def _p99(value: float, threshold: float, _subject: str | None) -> str:
    return f"p99 latency {value:.0f} ms over the last minute (threshold {threshold:.0f} ms)"


def _memory(value: float, threshold: float, _subject: str | None) -> str:
    return f"a worker uses {value:.0%} of its memory (threshold {threshold:.0%})"


def _breaker(_value: float, _threshold: float, subject: str | None) -> str:
    return f"circuit breaker {subject} is open"


def _health(value: float, threshold: float, subject: str | None) -> str:
    return f"health check {subject} failed {value:.0f} runs in a row (threshold {threshold:.0f})"


def rules(settings: Settings) -> dict[str, Rule]:
    """The six rules, by name, with the thresholds of ``settings``."""
    memory_for = settings.alert_memory_for
    return {
        rule.name: rule
        for rule in (
            Rule(
                "error_rate",
                "critical",
                settings.alert_error_rate,
                settings.alert_error_rate_for,
                _error_rate,
            ),
            Rule("latency_p99", "warning", settings.alert_p99_ms, settings.alert_p99_for, _p99),
            Rule(
                "memory_high",
                "warning",
                settings.memory_collect_percent / 100,
                memory_for,
                _memory,
            ),
            Rule(
                "memory_critical",
                "critical",
                settings.memory_critical_percent / 100,
                memory_for,
                _memory,
            ),
            Rule(
                "breaker_open",
                "critical",
                1.0,
                settings.alert_breaker_open_for,
                _breaker,
                inclusive=True,
            ),
            Rule(
                "health_failing",
                "critical",
                settings.alert_health_failures,
                0.0,
                _health,
                inclusive=True,
            ),
        )
    }
