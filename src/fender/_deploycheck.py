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

import re
import shlex
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._status import Finding, Status
from fender.doctor import Report, over_memory
from fender.errors import ConfigurationError
from fender.settings import Settings, endpoint_paths, load_settings

__all__ = ["diagnose_deploy"]

_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_YAML = (".yaml", ".yml")
_K8S_DEFAULT_GRACE = 30  # seconds, when a pod spec does not say
_COMPOSE_DEFAULT_GRACE = 10.0  # seconds: docker stop's default before SIGKILL
_K8S_UNITS = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
_DOCKER_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}  # binary, as docker reads them
_URL_PATH = re.compile(r"https?://[^/\s\"']+(/[^\s\"'?#]*)?")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_DURATION_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


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
        str(doc.get("metadata", {}).get("name", "")): _strings(doc.get("data"))
        for _, doc in documents
        if doc.get("kind") == "ConfigMap"
    }
    for path, doc in documents:
        if doc.get("kind") in _WORKLOADS or doc.get("kind") == "Pod":
            findings.extend(_kubernetes(root, path, doc, config_maps))
        elif "services" in doc and isinstance(doc["services"], Mapping):
            findings.extend(_compose(root, path, doc))
    for path in files:
        if path.name == "Dockerfile" or path.name.endswith(".Dockerfile"):
            findings.extend(_dockerfile(root, path))
        elif path.name == "Procfile":
            findings.extend(_procfile(root, path))
    if not findings:
        reason = f"no Kubernetes manifest, compose file, Dockerfile or Procfile under {root}"
        findings.append(Finding("deploy", Status.WARN, reason, "point --deploy at your files"))
    return Report(tuple(findings))


# --- reading -------------------------------------------------------------------------------------


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
            reason = f"{_rel(root, path)} is not readable YAML: {exc}"
            findings.append(Finding("deploy", Status.FAIL, reason, "fix the file"))
            continue
        for doc in docs:
            if isinstance(doc, dict):
                yield path, doc


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def _strings(data: object) -> dict[str, str]:
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items() if v is not None}


def _load(where: str, environ: Mapping[str, str]) -> Settings | Finding:
    """The settings fender will load in one container, or why it would refuse them."""
    try:
        return load_settings(environ, env_file=None)
    except ConfigurationError as exc:
        reason = f"{where}: fender would refuse its environment: {exc}"
        fix = f"correct {exc.field} in the container's environment"
        return Finding("deploy:settings", Status.FAIL, reason, fix, exc.field)


# --- probes --------------------------------------------------------------------------------------


def _probe_finding(where: str, role: str, path: str, settings: Settings) -> Finding:
    """Judge a probe (role: liveness, readiness, startup, healthcheck) on ``path``."""
    check = f"deploy:{role}"
    prefix = settings.health_prefix
    served = endpoint_paths(settings)
    aliases = settings.health_aliases
    live = {prefix + "/live"} | ({"/livez"} if aliases else set())
    ready = {prefix + "/ready"} | ({"/readyz"} if aliases else set())
    whole = {prefix, prefix + "/quick"} | ({"/healthz"} if aliases else set())
    protected = {prefix + "/detailed", prefix + "/drain", "/status", "/circuit-breaker"}
    if settings.metrics_protected:
        protected.add(settings.metrics_path)
    said = f"{where}: {role} probe on {path}"
    if path in protected:
        reason = f"{said}: an admin-only page, which answers 404 to the prober"
        return Finding(check, Status.FAIL, reason, f"probe {prefix}/ready or {prefix}/live")
    if path not in served:
        near = path.startswith((prefix, "/health")) or path in ("/healthz", "/livez", "/readyz")
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


def _url_path(command: str) -> str | None:
    match = _URL_PATH.search(command)
    if match is None:
        return None
    return match.group(1) or "/"


# --- Kubernetes ----------------------------------------------------------------------------------


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


def _kubernetes(
    root: Path, path: Path, doc: Mapping[str, Any], config_maps: Mapping[str, dict[str, str]]
) -> Iterator[Finding]:
    spec = _pod_spec(doc)
    name = f"{_rel(root, path)} {doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"
    grace = spec.get("terminationGracePeriodSeconds", _K8S_DEFAULT_GRACE)
    for container in spec.get("containers") or ():
        where = f"{name} container {container.get('name', '?')}"
        settings = _load(where, _container_env(container, config_maps))
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
                yield _probe_finding(where, role, str(http["path"]), settings)
                yield from _probe_port(where, role, http.get("port"), container, settings)
        drain = yield from _pre_stop(where, container, settings)
        yield _grace_finding(where, float(grace), drain, settings, "terminationGracePeriodSeconds")
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        yield _memory_finding(where, limit, settings, kubernetes=True)


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
        return _seconds(words[1])
    return None


def _grace_finding(
    where: str, grace: float, drain: float, settings: Settings, name: str
) -> Finding:
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


# --- memory --------------------------------------------------------------------------------------


def _memory_finding(where: str, limit: object, settings: Settings, *, kubernetes: bool) -> Finding:
    if limit is None:
        reason = f"{where}: no memory limit, so fender sizes workers by the host's memory"
        return Finding("deploy:memory", Status.WARN, reason, "set a memory limit (512Mi, say)")
    parsed = _bytes(str(limit), _K8S_UNITS if kubernetes else _DOCKER_UNITS)
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


def _bytes(text: str, units: Mapping[str, int]) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if match is None:
        return None
    unit = match.group(2)
    if units is _DOCKER_UNITS:
        unit = unit.lower().removesuffix("b") if unit.lower() != "b" else "b"
    factor = units.get(unit)
    return None if factor is None else float(match.group(1)) * factor


def _seconds(text: str) -> float | None:
    """``30``, ``1m30s``, ``1.5s`` in seconds; None if unreadable."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)


# --- compose -------------------------------------------------------------------------------------


def _interpolate(value: str) -> str | None:
    """``${VAR:-default}`` as compose reads it with VAR unset; None when it has no default."""
    missing = False

    def default(match: re.Match[str]) -> str:
        nonlocal missing
        if match.group(2) is None:
            missing = True
            return ""
        return match.group(2)

    result = _INTERPOLATION.sub(default, value)
    return None if missing else result


def _compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    given = service.get("environment") or {}
    pairs: list[tuple[str, object]]
    if isinstance(given, Mapping):
        pairs = list(given.items())
    else:
        pairs = [tuple(str(item).split("=", 1)) for item in given if "=" in str(item)]  # type: ignore[misc]
    environ: dict[str, str] = {}
    for name, value in pairs:
        text = _interpolate("" if value is None else str(value))
        if text is not None:
            environ[str(name)] = text
    return environ


def _runs_fender(service: Mapping[str, Any], path: Path) -> bool:
    said = " ".join(str(service.get(key) or "") for key in ("command", "entrypoint", "healthcheck"))
    if "fender" in said:
        return True
    build = service.get("build")
    if build is None:
        return False
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    candidate = path.parent / str(context) / str(dockerfile)
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError:
        return False
    return any(
        line.split(maxsplit=1)[0].upper() in ("CMD", "ENTRYPOINT") and "fender" in line
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def _compose(root: Path, path: Path, doc: Mapping[str, Any]) -> Iterator[Finding]:
    for name, service in doc["services"].items():
        if not isinstance(service, Mapping) or not _runs_fender(service, path):
            continue
        where = f"{_rel(root, path)} service {name}"
        settings = _load(where, _compose_env(service))
        if isinstance(settings, Finding):
            yield settings
            continue
        test = service.get("healthcheck", {}).get("test")
        command = " ".join(test) if isinstance(test, list) else str(test or "")
        probe = _url_path(command)
        if probe is None:
            reason = f"{where}: no healthcheck on a fender endpoint"
            fix = f'healthcheck: test: ["CMD", "fender", "probe", "http://127.0.0.1:{settings.port}{settings.health_prefix}/ready"]'
            yield Finding("deploy:healthcheck", Status.WARN, reason, fix)
        else:
            yield _probe_finding(where, "healthcheck", probe, settings)
        grace = service.get("stop_grace_period")
        seconds = _COMPOSE_DEFAULT_GRACE if grace is None else _seconds(str(grace))
        if seconds is None:
            yield Finding(
                "deploy:grace",
                Status.FAIL,
                f"{where}: stop_grace_period {grace!r} is not a duration",
                "",
            )
        else:
            yield _grace_finding(where, seconds, 0.0, settings, "stop_grace_period")
        limit = service.get("deploy", {}).get("resources", {}).get("limits", {}).get(
            "memory"
        ) or service.get("mem_limit")
        yield _memory_finding(where, limit, settings, kubernetes=False)


# --- Dockerfile and Procfile ---------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\s*\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    found = []
    for line in joined.splitlines():
        parts = line.strip().split(maxsplit=1)
        if parts:
            found.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return found


def _final_stage(text: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The final stage's instructions, and the environment its ENV lines set."""
    final: list[tuple[str, str]] = []
    for word, args in _instructions(text):
        final = [] if word == "FROM" else final
        final.append((word, args))
    environ: dict[str, str] = {}
    for item in (item for word, args in final if word == "ENV" for item in shlex.split(args)):
        key, equals, value = item.partition("=")
        if equals:
            environ[key] = value
    return final, environ


def _dockerfile(root: Path, path: Path) -> Iterator[Finding]:
    where = _rel(root, path)
    final, environ = _final_stage(path.read_text(encoding="utf-8"))
    users = [args.split(":")[0].strip() for word, args in final if word == "USER"]
    if not users or users[-1] in ("root", "0"):
        reason = f"{where}: the final stage runs as root"
        yield Finding("deploy:user", Status.WARN, reason, "add a user and USER it")
    checks = [args for word, args in final if word == "HEALTHCHECK"]
    if not checks:
        reason = f"{where}: no HEALTHCHECK"
        fix = 'HEALTHCHECK CMD ["fender", "probe", "http://127.0.0.1:8000/health/ready"]'
        yield Finding("deploy:healthcheck", Status.WARN, reason, fix)
        return
    command = checks[-1]
    runs = " ".join(args for word, args in final if word == "RUN")
    for tool in ("curl", "wget"):
        if re.search(rf"\b{tool}\b", command) and not re.search(rf"\b{tool}\b", runs):
            reason = (
                f"{where}: the HEALTHCHECK runs {tool}, which no RUN of the final stage "
                "installs (python:*-slim has none)"
            )
            yield Finding("deploy:healthcheck", Status.FAIL, reason, "use fender probe URL")
    probe = _url_path(command)
    settings = _load(where, environ)
    if isinstance(settings, Finding):
        yield settings
    elif probe is not None:
        yield _probe_finding(where, "healthcheck", probe, settings)


def _procfile(root: Path, path: Path) -> Iterator[Finding]:
    where = _rel(root, path)
    web = [
        line.split(":", 1)[1].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("web:")
    ]
    if not web:
        yield Finding(
            "deploy:procfile", Status.WARN, f"{where}: no web process", "web: fender run app:app"
        )
    elif "fender run" not in web[0]:
        reason = f"{where}: web runs {web[0]!r}, not fender run (workers, timeouts and drain unset)"
        yield Finding("deploy:procfile", Status.WARN, reason, "web: fender run module:app")
    else:
        yield Finding("deploy:procfile", Status.PASS, f"{where}: web runs fender run (binds $PORT)")
