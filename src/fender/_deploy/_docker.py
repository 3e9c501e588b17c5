"""Dockerfiles (the final stage: user, HEALTHCHECK) and Procfiles."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from fender._deploy._judge import load, probe_finding, rel, url_path
from fender._status import Finding, Status

__all__ = ["instructions", "judge_dockerfile", "judge_procfile"]


def instructions(text: str) -> list[tuple[str, str]]:
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
    for word, args in instructions(text):
        final = [] if word == "FROM" else final
        final.append((word, args))
    environ: dict[str, str] = {}
    for item in (item for word, args in final if word == "ENV" for item in shlex.split(args)):
        key, equals, value = item.partition("=")
        if equals:
            environ[key] = value
    return final, environ


def judge_dockerfile(root: Path, path: Path) -> Iterator[Finding]:
    """The final stage of a Dockerfile: a non-root USER, a HEALTHCHECK the image can run."""
    where = rel(root, path)
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
    probe = url_path(command)
    settings = load(where, environ)
    if isinstance(settings, Finding):
        yield settings
    elif probe is not None:
        yield probe_finding(where, "healthcheck", probe, settings)


def judge_procfile(root: Path, path: Path) -> Iterator[Finding]:
    """A Procfile's web process: fender run, which binds the host's $PORT."""
    where = rel(root, path)
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
