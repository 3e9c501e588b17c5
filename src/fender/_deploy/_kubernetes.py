"""Kubernetes workloads: probes, preStop, terminationGracePeriodSeconds, memory limits."""

from __future__ import annotations

import shlex
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._deploy._judge import (
    grace_finding,
    load,
    memory_finding,
    probe_finding,
    rel,
    seconds,
)
from fender._status import Finding, Status
from fender.settings import Settings

__all__ = ["WORKLOADS", "judge_workload"]

WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_K8S_DEFAULT_GRACE = 30  # seconds, when a pod spec does not say


def _pod_spec(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    if doc.get("kind") == "Pod":
        spec = doc.get("spec")
    else:
        spec = doc.get("spec", {}).get("template", {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _container_env(
    container: Mapping[str, Any], config_maps: Mapping[str, dict[str, str]]
) -> dict[str, str]:
    environ: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        ref = (source or {}).get("configMapRef") or {}
        environ.update(config_maps.get(str(ref.get("name", "")), {}))
    for var in container.get("env") or ():
        # Values from secrets or fields are unknown here; fender's defaults stand in for them.
        if isinstance(var, Mapping) and "value" in var and var["value"] is not None:
            environ[str(var["name"])] = str(var["value"])
    return environ


def judge_workload(
    root: Path, path: Path, doc: Mapping[str, Any], config_maps: Mapping[str, dict[str, str]]
) -> Iterator[Finding]:
    """Each container of a workload: probes, preStop, grace period, memory limit."""
    spec = _pod_spec(doc)
    name = f"{rel(root, path)} {doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"
    grace = spec.get("terminationGracePeriodSeconds", _K8S_DEFAULT_GRACE)
    for container in spec.get("containers") or ():
        where = f"{name} container {container.get('name', '?')}"
        settings = load(where, _container_env(container, config_maps))
        if isinstance(settings, Finding):
            yield settings
            continue
        for key, role in (("livenessProbe", "liveness"), ("readinessProbe", "readiness"),
                          ("startupProbe", "startup")):  # fmt: skip
            probe = container.get(key)
            if probe is None:
                if role != "startup":
                    reason = f"{where}: no {role} probe"
                    yield Finding(f"deploy:{role}", Status.WARN, reason, f"add a {key}")
                continue
            http = probe.get("httpGet")
            if isinstance(http, Mapping) and "path" in http:
                yield probe_finding(where, role, str(http["path"]), settings)
                yield from _probe_port(where, role, http.get("port"), container, settings)
        drain = yield from _pre_stop(where, container, settings)
        yield grace_finding(where, float(grace), drain, settings, "terminationGracePeriodSeconds")
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        yield memory_finding(where, limit, settings, kubernetes=True)


def _probe_port(
    where: str, role: str, port: object, container: Mapping[str, Any], settings: Settings
) -> Iterator[Finding]:
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or () if p}
    number = ports.get(port) if isinstance(port, str) else port
    if number is not None and number != settings.port:
        reason = f"{where}: the {role} probe asks port {port}, fender run binds {settings.port}"
        yield Finding(f"deploy:{role}", Status.FAIL, reason, "probe FENDER_PORT (or PORT)")


def _pre_stop(
    where: str, container: Mapping[str, Any], settings: Settings
) -> Generator[Finding, None, float]:
    """The preStop finding; returns the seconds the hook waits (the generator's value)."""
    hook = container.get("lifecycle", {}).get("preStop")
    if not hook:
        reason = (
            f"{where}: no preStop hook, so the pod gets traffic after SIGTERM, until every "
            "load balancer has seen it leave"
        )
        fix = 'add lifecycle.preStop.exec.command: ["fender", "drain"]'
        yield Finding("deploy:prestop", Status.FAIL, reason, fix)
        return 0.0
    command = hook.get("exec", {}).get("command") or []
    words = [str(w) for w in command]
    if len(words) == 3 and words[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):  # noqa: PLR2004
        words = shlex.split(words[2])
    wait = _drain_wait(words, settings)
    if wait is None:
        reason = f"{where}: preStop runs {' '.join(words) or hook!r}, not fender drain"
        fix = "fender drain turns readiness off and closes keep-alive connections first"
        yield Finding("deploy:prestop", Status.WARN, reason, fix)
        return 0.0
    yield Finding("deploy:prestop", Status.PASS, f"{where}: preStop waits {wait:g}s")
    return wait


def _drain_wait(words: list[str], settings: Settings) -> float | None:
    """Seconds ``fender drain [--wait N]`` or ``sleep N`` waits; None for anything else."""
    if len(words) >= 2 and Path(words[0]).name == "fender" and words[1] == "drain":  # noqa: PLR2004
        if "--wait" in words[:-1]:
            return float(words[words.index("--wait") + 1])
        return settings.drain_seconds
    if len(words) == 2 and Path(words[0]).name == "sleep":  # noqa: PLR2004
        return seconds(words[1])
    return None
