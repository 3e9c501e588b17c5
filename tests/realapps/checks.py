"""What fender's assertions on the corpus share: a production environment, the metrics read."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from realapps import WITHOUT_FENDER

STRONG_KEY = secrets.token_urlsafe(48)
# fender's own endpoints: left out of the label sets compared.
OWN = {"/metrics", "/health/live", "/health/ready", "/health/quick", "/health/version"}

_SAMPLE = re.compile(
    r"^http_server_request_duration_seconds_count\{(?P<labels>.*)\} (?P<value>\S+)$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Counts = Counter[tuple[str, str, str]]

# What a developer's shell or CI may export and a user's suite would not have: fender's own
# variables (FENDER_TESTING included, which tests/conftest.py sets), the production secrets,
# Flask's prefixed config, and the servers a setting points at.
_PREFIXES = (
    "FENDER_",
    "SECRET_KEY",
    "FLASK_",
    "APP_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "LOG_LEVEL",
    "METRICS_ENABLED",
    "PROMETHEUS_MULTIPROC_DIR",
    WITHOUT_FENDER,
)


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable that fender or the apps read: the environment of a fresh checkout."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)


def production_environment(tmp_path: Path) -> dict[str, str]:
    """Served as in production: strong secrets for fender, Flask and Django; no test mode."""
    return {
        "FENDER_TESTING": "0",
        "FENDER_ENV": "production",
        "SECRET_KEY": STRONG_KEY,
        "FLASK_SECRET_KEY": STRONG_KEY,
        "FLASK_DATABASE": str(tmp_path / "flask.sqlite"),
        "DJANGO_SECRET_KEY": STRONG_KEY,
        "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
    }


def read_counts(exposition: str) -> Counts:
    """(route, method, status_code) -> requests, from a ``/metrics`` answer."""
    counts: Counts = Counter()
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match["labels"]))
            key = (labels["route"], labels["method"], labels["status_code"])
            counts[key] += int(float(match["value"]))
    return counts


def grown(before: Counts, after: Counts) -> dict[str, set[str]]:
    """route -> status codes of the requests recorded between two readings (fender's left out)."""
    routes: dict[str, set[str]] = {}
    for (route, method, status), count in after.items():
        if count > before.get((route, method, status), 0) and route not in OWN:
            routes.setdefault(route, set()).add(status)
    return routes


def json_line(line: str) -> dict[str, Any] | None:
    """A log line as its JSON object, None when it is not one (plain text, a list...)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
