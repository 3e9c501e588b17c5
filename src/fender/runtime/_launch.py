"""What ``fender run`` and ``fender workers`` do before gunicorn starts: find the app, measure.

* :func:`load_app` imports an app as gunicorn names it (``pkg.module:app``,
  ``pkg.module:create_app()``) from ``sys.path`` (``fender doctor`` judges apps so too);
* :func:`measure_app` imports it in a fresh child process and reports that process's resident
  size and the app's kind: what one worker costs before its first request;
* :func:`current_plan` is the plan for this process's environment and limits, and
  :data:`PLAN_VARIABLE` carries the plan ``fender run`` computed to gunicorn's configuration
  module, so the server runs exactly what was printed and logged.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fender.errors import ConfigurationError
from fender.runtime._container import read_limits
from fender.runtime._guard import resident_bytes
from fender.runtime._serve import AppKind, ServePlan, app_kind, plan_serving
from fender.settings import Settings

__all__ = [
    "KIND_VARIABLE",
    "PLAN_VARIABLE",
    "Measured",
    "current_plan",
    "detect_kind",
    "exported_plan",
    "import_app",
    "load_app",
    "measure_app",
    "parse_app",
]

PLAN_VARIABLE = "FENDER_SERVE_PLAN"
"""The JSON of gunicorn's settings that ``fender run`` computed (read by gunicorn_conf)."""
KIND_VARIABLE = "FENDER_APP_KIND"
"""``asgi`` or ``wsgi``, as ``fender run`` detected it."""


def parse_app(spec: str, *, field: str = "app") -> tuple[str, list[str], bool]:
    """(module, attribute path, call it) of ``spec``; ConfigurationError naming ``field``.

    As gunicorn names apps: ``module:attr``, ``module:api.app`` (dotted), ``module:factory()``
    (called without arguments).
    """
    module_name, colon, attr = spec.partition(":")
    factory = attr.endswith("()")
    path = attr.removesuffix("()").split(".")
    if not (colon and module_name) or not all(name.isidentifier() for name in path):
        raise ConfigurationError(
            field, spec, "module:attr or module:factory(), such as myproject.wsgi:application"
        )
    return module_name, path, factory


def import_app(module_name: str, path: list[str], factory: bool) -> object:  # noqa: FBT001  (positional from parse_app's tuple)
    """Import the module from ``sys.path``, follow ``path``, call it when ``factory``.

    Raises whatever importing the module or calling the factory raises.
    """
    target: Any = importlib.import_module(module_name)
    for name in path:
        target = getattr(target, name)
    return target() if factory else target


def load_app(spec: str) -> object:
    """The app ``spec`` names (see :func:`parse_app`), imported from ``sys.path``."""
    return import_app(*parse_app(spec))


@dataclass(frozen=True, slots=True)
class Measured:
    """One worker's cost: the resident MiB of a process that imported the app, and its kind."""

    rss_mb: float
    kind: AppKind


_MEASURE = """
import json, sys
from fender.runtime._launch import load_app
from fender.runtime._guard import resident_bytes
from fender.runtime._serve import app_kind
app = load_app(sys.argv[1])
print(json.dumps({"rss": resident_bytes(), "kind": app_kind(app)}))
"""


def measure_app(spec: str, *, timeout: float = 120.0) -> Measured:
    """Import ``spec`` in a child process; its RSS is what a worker costs before requests."""
    done = subprocess.run(  # noqa: S603  (our own interpreter and code; the spec is an argument)
        [sys.executable, "-c", _MEASURE, spec],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=Path.cwd(),
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigurationError("app", spec, f"an app that imports ({last})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(rss_mb=result["rss"] / 2**20, kind=result["kind"])


def current_plan(
    settings: Settings,
    kind: AppKind,
    *,
    per_worker_mb: float | None = None,
    master_rss_mb: float | None = None,
) -> ServePlan:
    """The plan for this process: the container's limits, this process as the master.

    ``master_rss_mb``: the master's size, when this process has grown past it (it imported
    the app to detect its kind); default: this process's RSS now.
    """
    limits = read_limits(memory_limit_mb=settings.memory_limit_mb)
    if master_rss_mb is None:
        master_rss_mb = resident_bytes() / 2**20
    return plan_serving(
        settings, limits, kind, master_rss_mb=master_rss_mb, per_worker_mb=per_worker_mb
    )


def detect_kind(spec: str) -> AppKind:
    """The kind of the app ``spec`` names (imported here)."""
    return app_kind(load_app(spec))


def exported_plan() -> dict[str, Any] | None:
    """The gunicorn settings ``fender run`` exported, or None (gunicorn started directly)."""
    text = os.environ.get(PLAN_VARIABLE)
    if not text:
        return None
    try:
        plan = json.loads(text)
    except ValueError:
        return None
    return plan if isinstance(plan, dict) else None
