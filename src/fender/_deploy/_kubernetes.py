"""Kubernetes workloads: probes, preStop, terminationGracePeriodSeconds, memory limits."""

from __future__ import annotations

import shlex
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._deploy._judge import (
    FENDER_COMMAND,
    grace_finding,
    load,
    mapping,
    mappings,
    memory_finding,
    probe_finding,
    rel,
    seconds,
    words,
    writable_finding,
)
from fender._status import Finding, Status
from fender.settings import Settings

__all__ = ["WORKLOADS", "judge_workload"]

# What serves requests: a Job or CronJob (a migration, a backup) has no probes or drain to judge.
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"})
_K8S_DEFAULT_GRACE = 30.0  # seconds, when a pod spec does not say


def _pod_spec(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    if doc.get("kind") == "Pod":
        return mapping(doc.get("spec"))
    return mapping(mapping(mapping(doc.get("spec")).get("template")).get("spec"))


def _container_env(
    container: Mapping[str, Any], config_maps: Mapping[str, dict[str, str]]
) -> dict[str, str]:
    environ: dict[str, str] = {}
    for source in mappings(container.get("envFrom")):
        ref = mapping(source.get("configMapRef"))
        prefix = str(source.get("prefix") or "")
        data = config_maps.get(str(ref.get("name", "")), {})
        environ.update({prefix + key: value for key, value in data.items()})
    for var in mappings(container.get("env")):
        # Values from secrets or fields are unknown here; fender's defaults stand in for them.
        if var.get("value") is not None and "name" in var:
            environ[str(var["name"])] = str(var["value"])
    return environ


def _runs_fender(container: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
    """A container of fender's: it names the program, or fender's variables configure it."""
    said = [container.get("command"), container.get("args")]
    hook = mapping(mapping(mapping(container.get("lifecycle")).get("preStop")).get("exec"))
    said.append(hook.get("command"))
    if any(FENDER_COMMAND.search(words(value)) for value in said):
        return True
    return any(name.startswith("FENDER_") for name in environ)


def judge_workload(
    root: Path, path: Path, doc: Mapping[str, Any], config_maps: Mapping[str, dict[str, str]]
) -> Iterator[Finding]:
    """Each container of a workload that runs fender: probes, preStop, grace period, memory."""
    spec = _pod_spec(doc)
    name = f"{rel(root, path)} {doc.get('kind')}/{mapping(doc.get('metadata')).get('name', '?')}"
    given = spec.get("terminationGracePeriodSeconds")
    grace = _K8S_DEFAULT_GRACE if given is None else seconds(str(given))
    for container in mappings(spec.get("containers")):
        environ = _container_env(container, config_maps)
        if not _runs_fender(container, environ):
            continue
        where = f"{name} container {container.get('name', '?')}"
        settings = load(where, environ)
        if isinstance(settings, Finding):
            yield settings
            continue
        yield from _probes(where, container, settings)
        drain = yield from _pre_stop(where, container, settings)
        if grace is None:
            reason = f"{where}: terminationGracePeriodSeconds {given!r} is not a number"
            yield Finding("deploy:grace", Status.FAIL, reason, "give seconds")
        else:
            name_of = "terminationGracePeriodSeconds"
            yield grace_finding(where, grace, drain, settings, name_of)
        limit = mapping(mapping(container.get("resources")).get("limits")).get("memory")
        yield memory_finding(where, limit, settings, kubernetes=True)
        if mapping(container.get("securityContext")).get("readOnlyRootFilesystem") is True:
            mounts = [str(m.get("mountPath", "")) for m in mappings(container.get("volumeMounts"))]
            yield writable_finding(where, settings, environ, mounts)


def _probes(where: str, container: Mapping[str, Any], settings: Settings) -> Iterator[Finding]:
    for key, role in (("livenessProbe", "liveness"), ("readinessProbe", "readiness"),
                      ("startupProbe", "startup")):  # fmt: skip
        probe = container.get(key)
        if not isinstance(probe, Mapping):
            if role != "startup":
                reason = f"{where}: no {role} probe"
                yield Finding(f"deploy:{role}", Status.WARN, reason, f"add a {key}")
            continue
        http = mapping(probe.get("httpGet"))
        if "path" in http:
            yield probe_finding(where, role, str(http["path"]), settings)
            yield from _probe_port(where, role, http.get("port"), container, settings)


def _probe_port(
    where: str, role: str, port: object, container: Mapping[str, Any], settings: Settings
) -> Iterator[Finding]:
    ports = {p.get("name"): p.get("containerPort") for p in mappings(container.get("ports"))}
    number = ports.get(port) if isinstance(port, str) else port
    if number is not None and number != settings.port:
        reason = f"{where}: the {role} probe asks port {port}, fender run binds {settings.port}"
        yield Finding(f"deploy:{role}", Status.FAIL, reason, "probe FENDER_PORT (or PORT)")


def _pre_stop(
    where: str, container: Mapping[str, Any], settings: Settings
) -> Generator[Finding, None, float]:
    """The preStop finding; returns the seconds the hook waits (the generator's value)."""
    hook = mapping(mapping(container.get("lifecycle")).get("preStop"))
    if not hook:
        reason = (
            f"{where}: no preStop hook, so the pod gets traffic after SIGTERM, until every "
            "load balancer has seen it leave"
        )
        fix = 'add lifecycle.preStop.exec.command: ["fender", "drain"]'
        yield Finding("deploy:prestop", Status.FAIL, reason, fix)
        return 0.0
    command = mapping(hook.get("exec")).get("command")
    argv = [str(w) for w in command] if isinstance(command, list) else []
    if len(argv) == 3 and argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):  # noqa: PLR2004
        argv = shlex.split(argv[2])
    try:
        wait = _drain_wait(argv, settings)
    except ValueError as exc:
        reason = f"{where}: preStop runs {' '.join(argv)}: {exc}"
        yield Finding("deploy:prestop", Status.FAIL, reason, "fender drain --wait SECONDS")
        return 0.0
    if wait is None:
        reason = f"{where}: preStop runs {' '.join(argv) or dict(hook)!r}, not fender drain"
        fix = "fender drain turns readiness off and closes keep-alive connections first"
        yield Finding("deploy:prestop", Status.WARN, reason, fix)
        return 0.0
    yield Finding("deploy:prestop", Status.PASS, f"{where}: preStop waits {wait:g}s")
    return wait


def _drain_wait(argv: list[str], settings: Settings) -> float | None:
    """Seconds ``fender drain [--wait N]`` or ``sleep N`` waits; None for anything else.

    Raises:
        ValueError: the wait given is not a number of seconds.
    """
    if len(argv) >= 2 and Path(argv[0]).name == "fender" and argv[1] == "drain":  # noqa: PLR2004
        for i, arg in enumerate(argv[2:], start=2):
            given = arg.partition("=")[2] if arg.startswith("--wait=") else None
            if arg == "--wait":
                given = argv[i + 1] if i + 1 < len(argv) else ""
            if given is not None:
                wait = seconds(given)
                if wait is None:
                    raise ValueError(f"--wait {given!r} is not a number of seconds")
                return wait
        return settings.drain_seconds
    if len(argv) == 2 and Path(argv[0]).name == "sleep":  # noqa: PLR2004
        return seconds(argv[1])
    return None
