"""``fender doctor --deploy DIR``: a team's deploy files judged against what fender does.

The mistakes found in services' deploy files before fender: probes on paths the app does not
serve (or that only an admin may read, or that check dependencies and so restart every pod when
Redis is down); a termination grace period shorter than the drain plus gunicorn's graceful
timeout, so that in-flight requests are killed; more workers than the memory limit holds; no
preStop hook, so that a pod is sent traffic after it was told to stop; a HEALTHCHECK with a curl
the image does not have. Each file kind is read for these, with the environment the container
really gets (its ``env``, its ConfigMaps in the same folder, compose ``environment``): fender's
settings are loaded from it, so a path moved by FENDER_HEALTH_PREFIX or a worker count from
WEB_WORKERS is judged as fender will see it.

Read here: Kubernetes manifests (Deployment, StatefulSet, DaemonSet, Job, Pod, ConfigMap),
compose files, Dockerfiles and a Procfile. Nothing here prints: ``fender.cli`` renders the
findings. Reading YAML needs PyYAML (``pip install 'fender[deploy]'``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._deploy._compose import judge_compose
from fender._deploy._docker import judge_dockerfile, judge_procfile
from fender._deploy._judge import rel, strings
from fender._deploy._kubernetes import WORKLOADS, judge_workload
from fender._status import Finding, Status
from fender.doctor import Report
from fender.errors import ConfigurationError

__all__ = ["diagnose_deploy"]

_YAML = (".yaml", ".yml")
_K8S_DEFAULT_GRACE = 30  # seconds, when a pod spec does not say


def diagnose_deploy(directory: str | Path) -> Report:
    """Judge every deploy file under ``directory`` (recursively); see the module docstring.

    Raises:
        ConfigurationError: ``directory`` is not a folder (field ``--deploy``).
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfigurationError("--deploy", str(directory), "a folder of deploy files")
    findings: list[Finding] = []
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
    documents = list(_yaml_documents(root, files, findings))
    config_maps = {
        str(doc.get("metadata", {}).get("name", "")): strings(doc.get("data"))
        for _, doc in documents
        if doc.get("kind") == "ConfigMap"
    }
    for path, doc in documents:
        if doc.get("kind") in WORKLOADS or doc.get("kind") == "Pod":
            findings.extend(judge_workload(root, path, doc, config_maps))
        elif "services" in doc and isinstance(doc["services"], Mapping):
            findings.extend(judge_compose(root, path, doc))
    for path in files:
        if path.name == "Dockerfile" or path.name.endswith(".Dockerfile"):
            findings.extend(judge_dockerfile(root, path))
        elif path.name == "Procfile":
            findings.extend(judge_procfile(root, path))
    if not findings:
        reason = f"no Kubernetes manifest, compose file, Dockerfile or Procfile under {root}"
        findings.append(Finding("deploy", Status.WARN, reason, "point --deploy at your files"))
    return Report(tuple(findings))


def _yaml_documents(
    root: Path, files: list[Path], findings: list[Finding]
) -> Iterator[tuple[Path, dict[str, Any]]]:
    yaml_files = [p for p in files if p.suffix in _YAML]
    if not yaml_files:
        return
    try:
        import yaml
    except ImportError:
        reason = "PyYAML is not installed: the Kubernetes and compose files were not read"
        findings.append(Finding("deploy", Status.FAIL, reason, "pip install 'fender[deploy]'"))
        return
    for path in yaml_files:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            reason = f"{rel(root, path)} is not readable YAML: {exc}"
            findings.append(Finding("deploy", Status.FAIL, reason, "fix the file"))
            continue
        for doc in docs:
            if isinstance(doc, dict):
                yield path, doc
