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

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._deploy._compose import judge_compose
from fender._deploy._docker import judge_dockerfile, judge_procfile
from fender._deploy._judge import mapping, rel, strings
from fender._deploy._kubernetes import WORKLOADS, judge_workload
from fender._status import Finding, Status
from fender.doctor import Report
from fender.errors import ConfigurationError

__all__ = ["diagnose_deploy"]

_YAML = (".yaml", ".yml")


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
        str(mapping(doc.get("metadata")).get("name", "")): strings(doc.get("data"))
        for _, doc in documents
        if doc.get("kind") == "ConfigMap"
    }
    for path, doc in documents:
        if doc.get("kind") in WORKLOADS:
            findings.extend(_guarded(root, path, judge_workload(root, path, doc, config_maps)))
        elif isinstance(doc.get("services"), Mapping):
            findings.extend(_guarded(root, path, judge_compose(root, path, doc)))
    for path in files:
        if path.name.startswith("Dockerfile") or path.name.endswith((".Dockerfile", ".dockerfile")):
            findings.extend(_guarded(root, path, judge_dockerfile(root, path)))
        elif path.name == "Procfile":
            findings.extend(_guarded(root, path, judge_procfile(root, path)))
    if not findings:
        reason = (
            "no fender service in a Kubernetes manifest, compose file, Dockerfile or Procfile "
            f"under {root}"
        )
        findings.append(Finding("deploy", Status.WARN, reason, "point --deploy at your files"))
    return Report(tuple(findings))


def _guarded(root: Path, path: Path, judged: Iterable[Finding]) -> list[Finding]:
    """The findings of one file; a file no reader expected is a finding, never a traceback."""
    found: list[Finding] = []
    try:
        found.extend(judged)
    except (OSError, UnicodeDecodeError) as exc:
        found.append(Finding("deploy", Status.FAIL, f"{rel(root, path)}: unreadable: {exc}", ""))
    except Exception as exc:
        reason = f"{rel(root, path)}: could not be judged ({type(exc).__name__}: {exc})"
        found.append(Finding("deploy", Status.FAIL, reason, "report this file to fender"))
    return found


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
    loader = _tolerant_loader(yaml)
    for path in yaml_files:
        text = ""
        try:
            text = path.read_text(encoding="utf-8")
            docs = list(yaml.load_all(text, Loader=loader))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            if "{{" in text:  # a Helm or Jinja template: only what it renders is a manifest
                reason = f"{rel(root, path)} is a template, not judged"
                fix = "judge what it renders (helm template ... > out/; fender doctor --deploy out)"
                findings.append(Finding("deploy", Status.WARN, reason, fix))
            else:
                reason = f"{rel(root, path)} is not readable YAML: {exc}"
                findings.append(Finding("deploy", Status.FAIL, reason, "fix the file"))
            continue
        yield from ((path, doc) for doc in docs if isinstance(doc, dict))


def _tolerant_loader(yaml: Any) -> Any:
    """PyYAML's safe loader that reads unknown tags (compose's !reset) as the value they tag."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def untagged(loader: Any, _suffix: str, node: Any) -> object:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_mapping(node, deep=True)

    Loader.add_multi_constructor("!", untagged)
    return Loader
