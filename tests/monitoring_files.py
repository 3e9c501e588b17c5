"""The monitoring files under deploy/ as data: alert rules, their unit tests, dashboard queries.

Shared by the static checks (tests/deploy/test_deploy_alerts.py) and the end-to-end run against
a live store (tests/e2e/test_deploy_dashboard_e2e.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "fender.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

# alerts.yml's convention: `<signal> <comparison> <threshold>`, the threshold a number at the end.
_SPLIT = re.compile(
    r"^(?P<signal>.*\S)\s*(?P<op>==|!=|>=|<=|>|<)\s*"
    r"(?P<threshold>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$",
    re.DOTALL,
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml, in file order."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def split_alert(expr: str) -> tuple[str, str, float]:
    """``(signal, comparison, threshold)`` of an alert expression.

    Raises:
        ValueError: the expression does not end in a comparison with a number, or that
            comparison is not the top-level operator (the signal has an unbalanced bracket or
            a set operator outside brackets, which binds looser than the comparison).
    """
    match = _SPLIT.match(expr.strip())
    if match is None:
        raise ValueError(f"not `<signal> <comparison> <number>`: {expr!r}")
    signal = match["signal"].strip()
    bare = _STRING.sub('""', signal)
    depth = 0
    top = []
    for char in bare:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in {signal!r}")
        elif depth == 0:
            top.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced brackets in {signal!r}")
    outside = "".join(top)
    if re.search(r"\b(and|or|unless|bool)\b", outside) or re.search(r"[<>]|[=!]=", outside):
        raise ValueError(f"the comparison is not the top-level operator of {expr!r}")
    return signal, match["op"], float(match["threshold"])


def alert_unit_tests() -> dict[str, list[dict[str, Any]]]:
    """alerts_test.yml's alert_rule_test cases by alert name."""
    cases: dict[str, list[dict[str, Any]]] = {}
    for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case)
    return cases


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard."""
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def query_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that query (rows only group), those inside collapsed rows included."""
    panels = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with Grafana's ``$name`` / ``${name}`` variables replaced (longest name first)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    for line in text.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match[1].lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors
