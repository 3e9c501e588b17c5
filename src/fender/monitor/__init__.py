"""The in-process monitor behind /status: request series, merged over workers; alerts.

Many small services have no Prometheus: this tells their operators, on /status, how the service
is doing (requests/s, 5xx share, p50/p95/p99 over 1, 5 and 15 minutes, the slowest routes) and
what is wrong (threshold alerts, each fired and resolved once as a log event and a metric).
"""

from fender.monitor._alerts import Alert, AlertBook, Rule, Transition
from fender.monitor._monitor import TICK_SECONDS, Monitor

__all__ = ["TICK_SECONDS", "Alert", "AlertBook", "Monitor", "Rule", "Transition"]
