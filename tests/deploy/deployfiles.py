"""Helpers the deploy-file tests share: loading the files, the real validators, known settings.

Not a test module: the compose and Kubernetes tests import it by name (pytest puts this folder
on ``sys.path``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from examples.kvstore.settings import KvSettings
from fender.settings import env_vars

from servers import missing

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# Variables the stores get that are not fields of a settings model, each read by fender itself
# under this name (a test checks the name is in that module's source): the name is the
# contract, a typo in a deploy file would silently do nothing.
READ_DIRECTLY = {
    # fender.runtime.gunicorn_conf and fender.observability._metrics: where gunicorn's workers
    # keep their metrics (prometheus_client reads the same variable).
    "PROMETHEUS_MULTIPROC_DIR": ("fender.runtime.gunicorn_conf", "fender.observability._metrics"),
}


def load_yaml(path: Path) -> Any:
    """The one YAML document in ``path``."""
    return yaml.safe_load(path.read_text())


def tool(name: str) -> str:
    """The path of the command-line tool ``name``: on PATH or beside this Python (the venv).

    Skips the test (fails it under FENDER_REQUIRE_SERVICES) when it is not installed.
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        missing(name)
    return str(found)


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a validator; its output (both streams) lands in ``stdout`` for assertion messages."""
    return subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def known_env_names() -> frozenset[str]:
    """Every variable fender's settings or the store's (KV_*) read, aliases included."""
    fender = {name for var in env_vars() for name in (var.name, *var.aliases)}
    prefix = str(KvSettings.model_config.get("env_prefix", ""))
    store = {prefix + field.upper() for field in KvSettings.model_fields}
    return frozenset(fender | store | set(READ_DIRECTLY))


def unknown_env(names: Iterable[str]) -> list[str]:
    """The names in ``names`` no setting reads: a typo, or a setting that was renamed."""
    known = known_env_names()
    return sorted(name for name in names if name not in known)


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` replaced.

    What ``docker compose`` does with the variables of ``environ``. Raises ``KeyError`` for a
    required variable (``:?``) that ``environ`` lacks, as compose refuses to start.
    """

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = environ.get(name)
        unset = value is None or (op is not None and op.startswith(":") and not value)
        if not unset:
            return str(value)
        if op in (":-", "-"):
            return str(arg)
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VARIABLE.sub(replace, text).replace("$$", "$")


# Docker's units are binary whatever their spelling: 512m, 512M and 512mb are 512 MiB.
_COMPOSE_UNITS = {
    **dict.fromkeys(("", "b"), 1),
    **dict.fromkeys(("k", "kb"), 2**10),
    **dict.fromkeys(("m", "mb"), 2**20),
    **dict.fromkeys(("g", "gb"), 2**30),
}
_K8S_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def compose_bytes(size: str | int) -> int:
    """Bytes of a Compose memory size (``512M``, ``1g``): binary units, case-insensitive."""
    match = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", str(size))
    if match is None or match[2].lower() not in _COMPOSE_UNITS:
        raise ValueError(f"not a compose memory size: {size!r}")
    return int(match[1]) * _COMPOSE_UNITS[match[2].lower()]


def k8s_bytes(quantity: str | int) -> int:
    """Bytes of a Kubernetes memory quantity (``512Mi``, ``1G``)."""
    match = re.fullmatch(r"(\d+)([a-zA-Z]*)", str(quantity))
    if match is None or match[2] not in _K8S_UNITS:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    return int(match[1]) * _K8S_UNITS[match[2]]
