"""deploy/Dockerfile: hadolint accepts it, and its build and its CMD work, without a Docker engine.

There is no Docker engine on the machines that run this suite, so the test replays the
Dockerfile: a small parser reads its stages, each stage gets a directory standing for its root
filesystem, COPY copies from the build context (filtered by ``.dockerignore`` as Docker filters
it), the build steps' RUN commands run as written (their container paths moved into the stage's
root), and the final stage's CMD runs with its ENV. The one step that cannot run here (creating
the system user) is checked for what it is and only its directories are made.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import subprocess
import tomllib
import venv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx
import pytest
from deploy_servers import ExactEnvServer, run_probe, venv_bin
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fender._deploy._docker import instructions
from fender.settings import load_settings

from deployfiles import DEPLOY, load_yaml
from servers import free_port, missing

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# The build steps this test replays: package installs. Anything else a RUN does must be
# the user step below, or the test fails (a new step must be taught here, not skipped).
BUILD_COMMANDS = ("pip", "python")
USER_STEP = ("groupadd", "useradd", "mkdir", "chown", "chmod")
# The DBAPI driver each DATABASE_URL scheme needs (as fender normalises it), named as the
# distribution pip installs; None: in the standard library. A new scheme must be taught here.
DB_DRIVERS = {"postgresql+psycopg": "psycopg", "sqlite": None}


# --- the Dockerfile ------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: str


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(env_pairs(instruction.args))
        return values


def env_pairs(args: str) -> dict[str, str]:
    """The variables of one ENV instruction."""
    values: dict[str, str] = {}
    for pair in shlex.split(args):
        name, sep, value = pair.partition("=")
        assert sep, f"ENV {pair!r}: the key=value form only"
        values[name] = value
    return values


def logical_lines(text: str) -> list[str]:
    """Instructions one a line, read by fender doctor's Dockerfile reader (as Docker does)."""
    return [f"{keyword} {args}".rstrip() for keyword, args in instructions(text)]


def parse(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            stages.append(Stage(image.strip(), name.strip() or str(len(stages))))
            continue
        assert stages, f"{keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, flags, rest))
    return stages


def exec_form(args: str) -> list[str]:
    """A JSON-array command (the exec form): no shell between Docker and the process."""
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec form: {args}"
    assert all(isinstance(part, str) for part in value)
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    instruction = stage.last("HEALTHCHECK")
    assert instruction is not None, "no HEALTHCHECK"
    kind, _, command = instruction.args.partition(" ")
    assert kind == "CMD"
    return exec_form(command)


def mount_flag(flags: dict[str, str]) -> dict[str, str] | None:
    if "mount" not in flags:
        return None
    return dict(part.split("=", 1) for part in flags["mount"].split(","))


# --- .dockerignore, as Docker reads it ---------------------------------------------------------


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?|\[[^]]*\])", pattern):
            if part.startswith("[") and part.endswith("]"):
                regex += part  # a character class, as Go's filepath.Match reads it
            elif part in {"**", "**/"}:
                regex += "(?:.*/)?" if part == "**/" else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            else:
                regex += re.escape(part)
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            result = not negate
    return result


def context_files(rules: list[tuple[bool, re.Pattern[str]]]) -> set[str]:
    """The files of the repository that Docker would send as the build context."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {path for path in listed if (ROOT / path).is_file() and not ignored(path, rules)}


# --- the build, replayed ---------------------------------------------------------------------


class Build:
    """Each stage's root filesystem is a directory; container paths are moved into it."""

    def __init__(self, stages: list[Stage], tmp_path: Path, python_bin: Path) -> None:
        self.stages = {stage.name: stage for stage in stages}
        self.roots = {stage.name: tmp_path / f"root-{stage.name}" for stage in stages}
        self.context = context_files(ignore_rules(DOCKERIGNORE.read_text()))
        self.python_bin = python_bin
        self.skipped: list[str] = []

    def host(self, stage: str, path: str, cwd: str = "/") -> Path:
        # A container path: POSIX whatever the host, relative to the working directory.
        absolute = posixpath.normpath(str(PurePosixPath(cwd) / path))
        return self.roots[stage] / absolute.lstrip("/")

    def rewrite(self, stage: str, command: str, mounts: dict[str, Path]) -> str:
        """Absolute container paths in a command, moved into the stage's root (or a mount)."""

        def move(match: re.Match[str]) -> str:
            path = match.group(0)
            for target, source in mounts.items():
                if path == target or path.startswith(target + "/"):
                    return str(source) + path[len(target) :]
            return str(self.host(stage, path))

        return re.sub(r"(?<![\w.$-])/[\w./-]+", move, command)

    def run_stage(self, name: str) -> str:
        """Replay one stage; return its final working directory (a container path)."""
        root = self.roots[name]
        root.mkdir()
        workdir = "/"
        env: dict[str, str] = {}
        for instruction in self.stages[name].instructions:
            if instruction.keyword == "ENV":
                env.update(self.env_of(name, env_pairs(instruction.args)))
            elif instruction.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / instruction.args)
                self.host(name, workdir).mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                self.copy(name, instruction, workdir)
            elif instruction.keyword == "RUN":
                self.run(name, instruction, workdir, env)
        return workdir

    def env_of(self, stage: str, values: dict[str, str]) -> dict[str, str]:
        """ENV values, their container paths moved into the stage's root."""
        return {
            name: self.rewrite(stage, value, {}) if value.startswith("/") else value
            for name, value in values.items()
        }

    def copy(self, stage: str, instruction: Instruction, workdir: str) -> None:
        assert "from" not in instruction.flags, "COPY --from: mount the stage in a RUN instead"
        *sources, dest = shlex.split(instruction.args)
        target = self.host(stage, dest, workdir)
        for given in sources:
            source = given.rstrip("/")
            files = sorted(p for p in self.context if p == source or p.startswith(source + "/"))
            assert files, f"COPY {source}: not in the build context (.dockerignore?)"
            for path in files:
                # A directory source copies its contents; a file goes into a directory dest.
                relative = path[len(source) + 1 :] if path != source else Path(path).name
                to = target / relative
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, to)

    def run(self, stage: str, instruction: Instruction, workdir: str, env: dict[str, str]) -> None:
        command = instruction.args
        words = shlex.split(command)
        if words[0] not in BUILD_COMMANDS:
            self.user_step(stage, command)
            return
        mounts: dict[str, Path] = {}
        mount = mount_flag(instruction.flags)
        if mount is not None:
            assert mount["type"] == "bind"
            source = self.host(mount["from"], mount["source"])
            mounts[mount["target"]] = source
        # The image throws pip's cache away (a layer would keep it); here it saves minutes.
        command = command.replace("--no-cache-dir", "")
        done = subprocess.run(
            ["sh", "-c", self.rewrite(stage, command, mounts)],
            cwd=self.host(stage, workdir),
            env={
                "PATH": f"{self.python_bin}{os.pathsep}/usr/bin:/bin",
                "HOME": os.environ.get("HOME", "/root"),  # where pip's cache is
                **env,
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"RUN {command}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"

    def user_step(self, stage: str, command: str) -> None:
        """The system user's step: users cannot be made here; its directories are."""
        for part in command.split("&&"):
            words = shlex.split(part)
            assert words[0] in USER_STEP, f"RUN step this test cannot replay: {part.strip()}"
            if words[0] in {"mkdir", "chmod"}:
                subprocess.run(
                    [words[0], *(self.rewrite(stage, w, {}) for w in words[1:])], check=True
                )
        self.skipped.append(command)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def installed_extras(stages: list[Stage]) -> set[str]:
    """The extras of fender the runtime stage's one ``pip install`` of the wheel asks for."""
    (install,) = [i for i in stages[-1].all("RUN") if shlex.split(i.args)[:2] == ["pip", "install"]]
    found = re.search(r"\.whl'\)\[([\w,-]+)\]", install.args)
    assert found, f"the wheel installed without extras: {install.args}"
    return {canonicalize_name(extra) for extra in found[1].split(",")}


def deployed_database_urls() -> dict[str, str]:
    """Every DATABASE_URL the deploy files give the image, by where it is set."""
    urls: dict[str, str] = {}
    compose = load_yaml(DEPLOY / "compose.yaml")
    for name, service in compose["services"].items():
        if "build" in service and "DATABASE_URL" in service.get("environment", {}):
            # ${VAR...}: any value; only the scheme is read.
            urls[f"compose {name}"] = re.sub(
                r"\$\{[^}]*\}", "x", service["environment"]["DATABASE_URL"]
            )
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        doc = load_yaml(path)
        for key in ("data", "stringData"):
            if "DATABASE_URL" in doc.get(key, {}):
                urls[f"{path.name} {key}"] = doc[key]["DATABASE_URL"]
    return urls


def test_every_database_url_has_its_driver_installed(stages):
    urls = deployed_database_urls()
    assert any(where.startswith("compose") for where in urls)
    assert any(where.endswith(".yaml stringData") for where in urls)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = {
        canonicalize_name(Requirement(requirement).name)
        for extra in installed_extras(stages)
        for requirement in extras[extra]
    }
    for where, url in urls.items():
        # As fender reads it: postgres:// and postgresql:// become postgresql+psycopg://.
        scheme = load_settings({"DATABASE_URL": url}, env_file=None).database_url.split("://")[0]
        assert scheme in DB_DRIVERS, f"{where}: teach DB_DRIVERS the driver of {scheme}"
        driver = DB_DRIVERS[scheme]
        assert driver is None or driver in installed, (
            f"{where}: {scheme} needs {driver}, which no extra the Dockerfile installs provides"
        )


def test_hadolint_finds_nothing(tmp_path):
    binary = shutil.which("hadolint") or str(venv_bin() / "hadolint")
    if not Path(binary).exists():
        missing("hadolint")
    # No config file (run from an empty directory, no XDG config) and no inline ignore: every
    # rule at every level (info and style too) applies.
    linted = subprocess.run(
        [binary, "--no-color", "--format", "json", "--disable-ignore-pragma", str(DOCKERFILE)],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(linted.stdout or "null") == [], linted.stdout + linted.stderr
    assert linted.returncode == 0


def test_the_image_is_built_to_run_as_its_own_user(stages):
    assert len(stages) >= 2, "multi-stage: a builder, then the runtime"
    final = stages[-1]
    for stage in stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", stage.image), stage.image
    user = final.last("USER")
    assert user is not None, "the final stage sets no USER: it would run as root"
    name, _, group = user.args.partition(":")
    assert name not in {"root", "0"}
    assert group not in {"root", "0"}
    # Numeric: what Kubernetes' runAsNonRoot can check without a runAsUser.
    assert name.isdigit()
    # Nothing after USER runs as a build step (it would run as that user, or mean the switch
    # came too early).
    after = final.instructions[final.instructions.index(user) :]
    assert not [i for i in after if i.keyword in {"RUN", "COPY"}]
    env = final.env()
    assert env["FENDER_ENV"] == "production"
    assert env["FENDER_PORT"] == "8000"
    assert env["FENDER_HOST"] == "0.0.0.0"
    assert env["MEMORY_LIMIT_MB"] == "512"
    assert env["FENDER_RUNTIME_DIR"].startswith("/")
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"
    assert "SECRET_KEY" not in env, "a secret comes from the runtime, never the image"
    assert final.last("EXPOSE").args == "8000"
    assert final.last("STOPSIGNAL").args == "SIGTERM"
    assert exec_form(final.last("CMD").args) == ["fender", "run", "examples.kvstore.app:app"]
    assert healthcheck_command(final) == [
        "fender", "probe", f"http://127.0.0.1:{env['FENDER_PORT']}/health/ready"
    ]  # fmt: skip


def test_the_runtime_stage_installs_the_command(stages):
    final = stages[-1]
    command = exec_form(final.last("CMD").args)[0]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command in scripts, f"{command} is not a console script of the wheel"
    installs = [i for i in final.all("RUN") if shlex.split(i.args)[:2] == ["pip", "install"]]
    assert len(installs) == 1
    mount = mount_flag(installs[0].flags)
    assert mount is not None
    assert mount["from"] == stages[0].name
    assert mount["target"] in installs[0].args
    assert {"flask"} <= installed_extras(stages)
    built = [i for i in stages[0].all("RUN") if shlex.split(i.args)[:2] == ["pip", "wheel"]]
    assert built
    assert mount["source"] in built[0].args


def test_dockerignore_sends_only_what_the_image_needs():
    rules = ignore_rules(DOCKERIGNORE.read_text())
    for path in (".venv/bin/python", ".git/HEAD", "data/kv-local.db", "tests/servers.py",
                 ".env", "src/fender/__pycache__/cli.cpython-311.pyc", ".mypy_cache/x",
                 "examples/kvstore/__pycache__/app.cpython-311.pyc", "bench/bench_kv.py",
                 "deploy/compose.yaml", "dist/fender-0.1.0-py3-none-any.whl"):  # fmt: skip
        assert ignored(path, rules), path
    for path in ("pyproject.toml", "README.md", "src/fender/cli.py", "examples/kvstore/app.py",
                 "examples/kvstore/templates/index.html", "examples/__init__.py"):  # fmt: skip
        assert not ignored(path, rules), path


@pytest.mark.e2e
def test_the_image_builds_serves_and_stops(stages, tmp_path):
    # The image's interpreter: a fresh one, with nothing but what the stages install.
    venv.create(tmp_path / "python", with_pip=True, symlinks=True)
    image_bin = tmp_path / "python" / "bin"
    build = Build(stages, tmp_path, image_bin)
    for stage in stages[:-1]:
        build.run_stage(stage.name)
    final = stages[-1]
    workdir = build.run_stage(final.name)
    assert len(build.skipped) == 1
    assert "useradd" in build.skipped[0]
    assert (image_bin / "fender").exists(), "the runtime stage did not install the CMD"
    # The driver of the deployed DATABASE_URL (postgresql+psycopg) imports in the image.
    imported = subprocess.run(
        [str(image_bin / "python"), "-c", "import psycopg"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    # The code the CMD imports is the copied examples/, not this checkout's.
    assert (build.host(final.name, workdir) / "examples" / "kvstore" / "app.py").is_file()

    port = free_port()
    env = {
        "PATH": f"{image_bin}{os.pathsep}/usr/bin:/bin",
        "HOME": str(build.host(final.name, "/app")),
        **build.env_of(final.name, final.env()),
        "FENDER_HOST": "127.0.0.1",
        "FENDER_PORT": str(port),
        "KV_LOCAL_URL": f"sqlite:///{tmp_path / 'kv-local.db'}",
        "KV_PEER_URL": f"sqlite:///{tmp_path / 'kv-peer.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
    }
    assert "PYTEST_VERSION" not in env  # fender would relax production rules under pytest
    probe = [part.replace(":8000/", f":{port}/") for part in healthcheck_command(final)]
    assert probe != healthcheck_command(final)
    probe[0] = str(image_bin / probe[0])
    server = ExactEnvServer(
        exec_form(final.last("CMD").args),
        ready=run_probe(probe, env),  # Docker's notion of a healthy container
        port=port,
        env=env,
        cwd=build.host(final.name, workdir),
    )
    try:
        server.start()  # waits until the HEALTHCHECK command exits 0
        url = f"http://127.0.0.1:{port}"
        written = httpx.put(f"{url}/kv/greeting", json={"value": "hello"}, timeout=10)
        assert written.status_code in {200, 201}, written.text
        read = httpx.get(f"{url}/kv/greeting", timeout=10)
        assert read.status_code == 200, read.text
        assert read.json()["value"] == "hello"
        assert (tmp_path / "kv-local.db").exists()
        # Production rules held: the image's FENDER_ENV, not a test run's relaxations.
        assert "Strict-Transport-Security" not in read.headers  # plain http: no HSTS
        assert read.headers["X-Content-Type-Options"] == "nosniff"
        assert server.terminate() == 0, server.output()[-3000:]
        levels = {json.loads(line)["level"] for line in server.output().splitlines()}
        assert not levels & {"error", "critical"}, server.output()[-3000:]
    finally:
        server.close()
