"""Compose services that run fender: healthcheck, stop_grace_period, memory limit."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._deploy._docker import final_stage
from fender._deploy._judge import (
    FENDER_COMMAND,
    grace_finding,
    load,
    mapping,
    memory_finding,
    probe_finding,
    rel,
    seconds,
    url_path,
    words,
    writable_finding,
)
from fender._status import Finding, Status
from fender.settings import Settings

__all__ = ["interpolate", "judge_compose"]

_COMPOSE_DEFAULT_GRACE = 10.0  # seconds: docker stop's default before SIGKILL
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str], *, strict: bool = False) -> str:
    """``text`` with ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` replaced as compose does.

    Raises:
        KeyError: a required variable (``:?``) is not in ``environ``, as compose refuses to
            start; under ``strict``, also a variable without a default (compose would read "").
    """

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = environ.get(name)
        unset = value is None or (op is not None and op.startswith(":") and not value)
        if not unset:
            return str(value)
        if op in (":-", "-"):
            return str(arg)
        if op in (":?", "?") or strict:
            raise KeyError(f"{name}: {arg or 'not set'}")
        return ""

    return _VARIABLE.sub(replace, text).replace("$$", "$")


def _compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    given = service.get("environment") or {}
    pairs: list[tuple[str, object]]
    if isinstance(given, Mapping):
        pairs = list(given.items())
    elif isinstance(given, list):
        pairs = [
            (key, value)
            for key, _, value in (str(i).partition("=") for i in given if "=" in str(i))
        ]
    else:
        pairs = []
    environ: dict[str, str] = {}
    for name, value in pairs:
        # Variables of the shell running compose are unknown here: fender's default stands in.
        with contextlib.suppress(KeyError):
            environ[str(name)] = interpolate("" if value is None else str(value), {}, strict=True)
    return environ


def _env_file(service: Mapping[str, Any], path: Path) -> dict[str, str]:
    """The ``env_file`` entries of a service that exist, read as compose reads them."""
    given = service.get("env_file")
    names = given if isinstance(given, list) else [given] if given else []
    environ: dict[str, str] = {}
    for entry in names:
        name = mapping(entry).get("path", entry) if isinstance(entry, Mapping) else entry
        try:
            text = (path.parent / str(name)).read_text(encoding="utf-8")
        except OSError:
            continue  # compose refuses a missing one unless it is optional; not ours to judge
        for line in text.splitlines():
            key, equals, value = line.strip().partition("=")
            if equals and not key.startswith("#"):
                environ[key.strip()] = value.strip().strip("'\"")
    return environ


def _image(service: Mapping[str, Any], path: Path) -> tuple[bool, dict[str, str]]:
    """Whether the image a service builds runs fender, and the ENV its Dockerfile sets."""
    build = service.get("build")
    if build is None:
        return False, {}
    context = build if isinstance(build, str) else mapping(build).get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else mapping(build).get("dockerfile")
    try:
        text = (path.parent / str(context) / str(dockerfile or "Dockerfile")).read_text("utf-8")
    except OSError:
        return False, {}
    final, environ = final_stage(text)
    runs = any(
        word in ("CMD", "ENTRYPOINT") and FENDER_COMMAND.search(words(args)) for word, args in final
    )
    return runs, environ


def judge_compose(root: Path, path: Path, doc: Mapping[str, Any]) -> Iterator[Finding]:
    """The services of one compose file that run fender: healthcheck, stop_grace_period, memory."""
    for name, service in mapping(doc.get("services")).items():
        if not isinstance(service, Mapping):
            continue
        healthcheck = mapping(service.get("healthcheck"))
        said = [service.get("command"), service.get("entrypoint"), healthcheck.get("test")]
        built, image_env = _image(service, path)
        if not built and not any(FENDER_COMMAND.search(words(value)) for value in said):
            continue
        where = f"{rel(root, path)} service {name}"
        # What the container gets: the image's ENV, then env_file, then environment.
        environ = {**image_env, **_env_file(service, path), **_compose_env(service)}
        settings = load(where, environ)
        if isinstance(settings, Finding):
            yield settings
            continue
        yield _healthcheck(where, words(healthcheck.get("test")), settings)
        grace = service.get("stop_grace_period")
        wait = _COMPOSE_DEFAULT_GRACE if grace is None else seconds(str(grace))
        if wait is None:
            reason = f"{where}: stop_grace_period {grace!r} is not a duration"
            yield Finding("deploy:grace", Status.FAIL, reason, "stop_grace_period: 45s")
        else:
            yield grace_finding(where, wait, 0.0, settings, "stop_grace_period")
        limits = mapping(mapping(mapping(service.get("deploy")).get("resources")).get("limits"))
        yield memory_finding(
            where, limits.get("memory") or service.get("mem_limit"), settings, kubernetes=False
        )
        if service.get("read_only") is True:
            yield writable_finding(where, settings, environ, _mounts(service))


def _healthcheck(where: str, command: str, settings: Settings) -> Finding:
    probe = url_path(command)
    if probe is not None:
        return probe_finding(where, "healthcheck", probe, settings)
    reason = f"{where}: no healthcheck on a fender endpoint"
    url = f"http://127.0.0.1:{settings.port}{settings.health_prefix}/ready"
    return Finding(
        "deploy:healthcheck", Status.WARN, reason, f'test: ["CMD", "fender", "probe", "{url}"]'
    )


def _mounts(service: Mapping[str, Any]) -> list[str]:
    """Where a service has writable storage: tmpfs paths and volume targets."""
    tmpfs = service.get("tmpfs")
    entries = tmpfs if isinstance(tmpfs, list) else [tmpfs] if tmpfs else []
    found = [str(entry).split(":", 1)[0] for entry in entries]
    for volume in service.get("volumes") or ():
        if isinstance(volume, Mapping):
            if not volume.get("read_only"):
                found.append(str(volume.get("target", "")))
        elif not str(volume).endswith(":ro"):
            parts = str(volume).split(":")
            found.append(parts[1] if len(parts) > 1 else parts[0])
    return found
