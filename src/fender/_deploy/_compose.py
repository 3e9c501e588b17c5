"""Compose services that run fender: healthcheck, stop_grace_period, memory limit."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fender._deploy._docker import instructions
from fender._deploy._judge import (
    grace_finding,
    load,
    memory_finding,
    probe_finding,
    rel,
    seconds,
    url_path,
)
from fender._status import Finding, Status

__all__ = ["interpolate", "judge_compose"]

_COMPOSE_DEFAULT_GRACE = 10.0  # seconds: docker stop's default before SIGKILL
# The fender program with one of its commands, not merely the word (a database named fender).
_FENDER_COMMAND = re.compile(r"(?:^|[\s/])fender\s+(?:run|probe|drain)\b")
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
    else:
        pairs = [tuple(str(item).split("=", 1)) for item in given if "=" in str(item)]  # type: ignore[misc]
    environ: dict[str, str] = {}
    for name, value in pairs:
        # Variables of the shell running compose are unknown here: fender's default stands in.
        with contextlib.suppress(KeyError):
            environ[str(name)] = interpolate("" if value is None else str(value), {}, strict=True)
    return environ


def _words(value: object) -> str:
    """A command as compose or a Dockerfile takes it (a string or a list), as one line of words."""
    if isinstance(value, list):
        return " ".join(str(word) for word in value)
    # A Dockerfile's exec form, ["fender", "run", ...], read as words too.
    return "" if value is None else re.sub(r"[\[\],\"']", " ", str(value))


def _runs_fender(service: Mapping[str, Any], path: Path) -> bool:
    healthcheck = service.get("healthcheck") or {}
    said = [service.get("command"), service.get("entrypoint"), healthcheck.get("test")]
    if any(_FENDER_COMMAND.search(_words(value)) for value in said):
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
        word in ("CMD", "ENTRYPOINT") and _FENDER_COMMAND.search(_words(args))
        for word, args in instructions(text)
    )


def judge_compose(root: Path, path: Path, doc: Mapping[str, Any]) -> Iterator[Finding]:
    """The services of one compose file that run fender: healthcheck, stop_grace_period, memory."""
    for name, service in doc["services"].items():
        if not isinstance(service, Mapping) or not _runs_fender(service, path):
            continue
        where = f"{rel(root, path)} service {name}"
        settings = load(where, _compose_env(service))
        if isinstance(settings, Finding):
            yield settings
            continue
        test = service.get("healthcheck", {}).get("test")
        command = " ".join(test) if isinstance(test, list) else str(test or "")
        probe = url_path(command)
        if probe is None:
            reason = f"{where}: no healthcheck on a fender endpoint"
            fix = f'healthcheck: test: ["CMD", "fender", "probe", "http://127.0.0.1:{settings.port}{settings.health_prefix}/ready"]'
            yield Finding("deploy:healthcheck", Status.WARN, reason, fix)
        else:
            yield probe_finding(where, "healthcheck", probe, settings)
        grace = service.get("stop_grace_period")
        wait = _COMPOSE_DEFAULT_GRACE if grace is None else seconds(str(grace))
        if wait is None:
            yield Finding(
                "deploy:grace",
                Status.FAIL,
                f"{where}: stop_grace_period {grace!r} is not a duration",
                "",
            )
        else:
            yield grace_finding(where, wait, 0.0, settings, "stop_grace_period")
        limit = service.get("deploy", {}).get("resources", {}).get("limits", {}).get(
            "memory"
        ) or service.get("mem_limit")
        yield memory_finding(where, limit, settings, kubernetes=False)
