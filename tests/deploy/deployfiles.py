"""Helpers the deploy-file tests share: loading the files, the real validators, known settings.

Not a test module: the compose and Kubernetes tests import it by name (pytest puts this folder
on ``sys.path``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from examples.kvstore.settings import KvSettings
from fender._deploy._docker import final_stage
from fender._deploy._judge import DOCKER_UNITS, K8S_UNITS, size_bytes
from fender.settings import env_vars

from servers import missing

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"

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


def image_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ENV of the Dockerfile's final stage: what every container of the image starts with."""
    return final_stage(path.read_text())[1]


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


def compose_bytes(size: str | int) -> int:
    """Bytes of a Compose memory size (``512M``, ``1g``): binary units, case-insensitive."""
    found = size_bytes(str(size), DOCKER_UNITS)
    if found is None:
        raise ValueError(f"not a compose memory size: {size!r}")
    return int(found)


def k8s_bytes(quantity: str | int) -> int:
    """Bytes of a Kubernetes memory quantity (``512Mi``, ``1G``)."""
    found = size_bytes(str(quantity), K8S_UNITS)
    if found is None:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    return int(found)
