"""Dockerfiles (the final stage: user, HEALTHCHECK) and Procfiles."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from fender._deploy._judge import load, probe_finding, rel, url_path
from fender._status import Finding, Status

__all__ = ["final_stage", "instructions", "judge_dockerfile", "judge_procfile"]


# Base images known to lack a tool: slim and distroless ones ship neither curl nor wget; alpine
# has busybox's wget but no curl. Of other bases nothing is assumed.
_LACKING = (
    (re.compile(r"slim|distroless|scratch"), {"curl", "wget"}),
    (re.compile("alpine"), {"curl"}),
)


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


def final_stage(text: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The final stage's instructions, and the environment its ENV lines set."""
    final: list[tuple[str, str]] = []
    for word, args in instructions(text):
        final = [] if word == "FROM" else final
        final.append((word, args))
    environ: dict[str, str] = {}
    for args in (args for word, args in final if word == "ENV"):
        try:
            items = shlex.split(args)
        except ValueError:  # an unbalanced quote: docker build would refuse it
            continue
        if items and "=" not in items[0]:  # the legacy form: ENV NAME the value
            environ[items[0]] = " ".join(items[1:])
            continue
        pairs = (item.partition("=") for item in items)
        environ.update({key: value for key, equals, value in pairs if equals})
    return final, environ


def judge_dockerfile(root: Path, path: Path) -> Iterator[Finding]:
    """The final stage of a Dockerfile: a non-root USER, a HEALTHCHECK the image can run."""
    where = rel(root, path)
    final, environ = final_stage(path.read_text(encoding="utf-8"))
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
    base = final[0][1].split()[0] if final and final[0][0] == "FROM" and final[0][1] else ""
    for tool in ("curl", "wget"):
        if (
            re.search(rf"\b{tool}\b", command)
            and not re.search(rf"\b{tool}\b", runs)
            and any(tool in tools and image.search(base) for image, tools in _LACKING)
        ):
            reason = (
                f"{where}: the HEALTHCHECK runs {tool}, which {base} does not ship and no RUN "
                "of the final stage installs"
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
