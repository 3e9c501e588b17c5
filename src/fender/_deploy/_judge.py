"""What every deploy file kind is judged by: the probe path, the grace period, the memory limit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fender._status import Finding, Status
from fender.doctor import over_memory
from fender.errors import ConfigurationError
from fender.settings import (
    ADMIN_FIXED_PATHS,
    ADMIN_SUBPATHS,
    ALIAS_PATHS,
    Settings,
    endpoint_paths,
    load_settings,
)

__all__ = [
    "DOCKER_UNITS",
    "FENDER_COMMAND",
    "K8S_UNITS",
    "grace_finding",
    "load",
    "mapping",
    "mappings",
    "memory_finding",
    "probe_finding",
    "rel",
    "seconds",
    "size_bytes",
    "strings",
    "url_path",
    "words",
    "writable_finding",
]

K8S_UNITS = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
DOCKER_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}  # binary, as docker reads them
# The fender program with one of its commands, not merely the word (a database named fender).
FENDER_COMMAND = re.compile(r"(?:^|[\s/])fender\s+(?:run|probe|drain)\b")
_URL_PATH = re.compile(r"https?://[^/\s\"']+(/[^\s\"'?#]*)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_DURATION_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one: files may hold null or a list anywhere."""
    return value if isinstance(value, Mapping) else {}


def mappings(value: object) -> list[Mapping[str, Any]]:
    """The mappings of a list (``containers``, ``env``...); nothing when it is not a list."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def words(value: object) -> str:
    """A command as compose, Kubernetes or a Dockerfile gives it (a string or a list) as words."""
    if isinstance(value, list):
        return " ".join(str(word) for word in value)
    # A Dockerfile's exec form, ["fender", "run", ...], read as words too.
    return "" if value is None else re.sub(r"[\[\],\"']", " ", str(value))


def writable_finding(
    where: str, settings: Settings, environ: Mapping[str, str], mounts: list[str]
) -> Finding:
    """On a read-only root filesystem: are the runtime and metrics directories mounted?"""
    metrics = environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("TMPDIR") or "/tmp"  # noqa: S108
    unmounted = [
        f"{name}={directory}"
        for name, directory in (
            ("FENDER_RUNTIME_DIR", settings.runtime_dir),
            ("the metrics directory (PROMETHEUS_MULTIPROC_DIR, else /tmp)", metrics),
        )
        if not any(_under(directory, mount) for mount in mounts)
    ]
    if unmounted:
        reason = (
            f"{where}: the root filesystem is read-only and {', '.join(unmounted)} is on no "
            "mount: the drain flag or the metrics files cannot be written"
        )
        fix = "mount an emptyDir (or tmpfs) there, or point the variable into one"
        return Finding("deploy:writable", Status.FAIL, reason, fix)
    return Finding(
        "deploy:writable", Status.PASS, f"{where}: runtime and metrics directories are mounted"
    )


def _under(directory: str, mount: str) -> bool:
    mount = mount.rstrip("/") or "/"
    return directory == mount or directory.startswith(mount.rstrip("/") + "/")


def rel(root: Path, path: Path) -> str:
    """``path`` as the findings name it: relative to the folder judged."""
    return str(path.relative_to(root))


def strings(data: object) -> dict[str, str]:
    """A ConfigMap's data as strings (None values dropped)."""
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items() if v is not None}


def load(where: str, environ: Mapping[str, str]) -> Settings | Finding:
    """The settings fender will load in one container, or why it would refuse them."""
    try:
        return load_settings(environ, env_file=None)
    except ConfigurationError as exc:
        reason = f"{where}: fender would refuse its environment: {exc}"
        fix = f"correct {exc.field} in the container's environment"
        return Finding("deploy:settings", Status.FAIL, reason, fix, exc.field)


def probe_finding(where: str, role: str, path: str, settings: Settings) -> Finding:
    """Judge a probe (role: liveness, readiness, startup, healthcheck) on ``path``."""
    check = f"deploy:{role}"
    prefix = settings.health_prefix
    served = endpoint_paths(settings)
    aliases = settings.health_aliases
    live = {prefix + "/live"} | ({"/livez"} if aliases else set())
    ready = {prefix + "/ready"} | ({"/readyz"} if aliases else set())
    whole = {prefix, prefix + "/quick"} | ({"/healthz"} if aliases else set())
    protected = {prefix + sub for sub in ADMIN_SUBPATHS} | set(ADMIN_FIXED_PATHS)
    if settings.metrics_protected:
        protected.add(settings.metrics_path)
    said = f"{where}: {role} probe on {path}"
    if path in protected:
        reason = f"{said}: an admin-only page, which answers 404 to the prober"
        return Finding(check, Status.FAIL, reason, f"probe {prefix}/ready or {prefix}/live")
    if path not in served:
        near = path.startswith((prefix, "/health")) or path in ALIAS_PATHS
        status = Status.FAIL if near else Status.WARN
        reason = f"{said}: fender serves no such path (its probes: {prefix}/live, {prefix}/ready)"
        fix = f"probe {prefix}/live or {prefix}/ready" + ("" if near else ", or serve it yourself")
        return Finding(check, status, reason, fix)
    if role == "liveness" and path not in live:
        reason = f"{said}: it checks dependencies, so a Redis outage restarts every pod"
        return Finding(check, Status.WARN, reason, f"probe liveness on {prefix}/live")
    if role == "readiness" and path in live:
        reason = f"{said}: liveness never turns 503 on drain, so the pod keeps traffic as it stops"
        return Finding(check, Status.FAIL, reason, f"probe readiness on {prefix}/ready")
    if path not in live | ready | whole:
        reason = f"{said}: a page that says nothing of health"
        return Finding(check, Status.WARN, reason, f"probe {prefix}/ready or {prefix}/live")
    return Finding(check, Status.PASS, f"{said}")


def url_path(command: str) -> str | None:
    """The path of the first http(s) URL in ``command``; None without one."""
    match = _URL_PATH.search(command)
    if match is None:
        return None
    return match.group(1) or "/"


def grace_finding(where: str, grace: float, drain: float, settings: Settings, name: str) -> Finding:
    """Whether ``grace`` seconds cover the drain plus GUNICORN_GRACEFUL_TIMEOUT."""
    need = drain + settings.graceful_timeout
    said = f"{where}: {name} {grace:g}s"
    if grace < need:
        reason = (
            f"{said} is shorter than the drain ({drain:g}s) plus GUNICORN_GRACEFUL_TIMEOUT "
            f"({settings.graceful_timeout}s): requests still running are killed"
        )
        return Finding("deploy:grace", Status.FAIL, reason, f"set {name} to at least {need + 5:g}")
    return Finding(
        "deploy:grace",
        Status.PASS,
        f"{said} covers drain {drain:g}s + graceful {settings.graceful_timeout}s",
    )


def memory_finding(where: str, limit: object, settings: Settings, *, kubernetes: bool) -> Finding:
    """The memory limit against MEMORY_LIMIT_MB and WEB_WORKERS x the worker size."""
    if limit is None:
        reason = f"{where}: no memory limit, so fender sizes workers by the host's memory"
        return Finding("deploy:memory", Status.WARN, reason, "set a memory limit (512Mi, say)")
    parsed = size_bytes(str(limit), K8S_UNITS if kubernetes else DOCKER_UNITS)
    if parsed is None:
        return Finding(
            "deploy:memory", Status.FAIL, f"{where}: memory limit {limit!r} is not a size", ""
        )
    limit_mb = parsed / 2**20
    if settings.memory_limit_mb is not None and settings.memory_limit_mb > limit_mb:
        reason = (
            f"{where}: MEMORY_LIMIT_MB={settings.memory_limit_mb:g} is over the container's "
            f"{limit_mb:.0f} MiB: fender would size workers for memory it does not have"
        )
        return Finding(
            "deploy:memory", Status.FAIL, reason, f"MEMORY_LIMIT_MB={limit_mb:.0f} or unset"
        )
    effective = min(limit_mb, settings.memory_limit_mb or limit_mb)
    if settings.web_workers is None:
        return Finding(
            "deploy:memory",
            Status.PASS,
            f"{where}: WEB_WORKERS unset: fender run sizes workers to {effective:.0f} MiB",
        )
    over = over_memory(settings.web_workers, settings.worker_memory_mb, effective)
    if over is not None:
        reason = f"{where}: WEB_WORKERS={over} memory limit: the container would be OOM-killed"
        return Finding(
            "deploy:memory",
            Status.FAIL,
            reason,
            "unset WEB_WORKERS (fender run sizes it)",
            "WEB_WORKERS",
        )
    fits = f"{where}: {settings.web_workers} workers fit in {effective:.0f} MiB"
    return Finding("deploy:memory", Status.PASS, fits)


def size_bytes(text: str, units: Mapping[str, int]) -> float | None:
    """Bytes of ``text`` (``512Mi``: K8S_UNITS; ``512m``, ``1gb``: DOCKER_UNITS); None if not."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if match is None:
        return None
    unit = match.group(2)
    if units is DOCKER_UNITS:
        unit = unit.lower().removesuffix("b") if unit.lower() != "b" else "b"
    factor = units.get(unit)
    return None if factor is None else float(match.group(1)) * factor


def seconds(text: str) -> float | None:
    """``30``, ``1m30s``, ``1.5s`` in seconds; None if unreadable."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)
