"""``fender doctor``: production-readiness checks over the current environment.

A doctor check is a plain function from :class:`~fender.settings.Settings` to findings; register
one with :func:`doctor_check`. The settings rules are built in; later subsystems (dependencies
reachable, worker count against memory) register theirs the same way. Besides the settings
rules, doctor builds what ``fender.install`` builds from them (rate limits, the admin guard,
the database engine, the Redis URL, all without connecting), so a value install would refuse
fails here too. It also checks what install cannot: that the runtime directory (the drain flag)
is writable, and, when the app uses Alembic (FENDER_ALEMBIC_CONFIG exists), that the database
is at head: the one check that connects. Nothing here prints: ``fender.cli`` renders the findings.

Given the app (``fender doctor --app module:attr``), the production rules judge it too: the
secret key and debug flag it really uses (:mod:`fender.apps`), and whether it needs
``SECRET_KEY`` at all. Without it, only the environment is judged.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from fender._private_dir import check_private
from fender._status import Finding, Status
from fender.apps import app_findings
from fender.db import engine_from_settings
from fender.db._migrations import migration_findings
from fender.errors import ConfigurationError
from fender.http.admin import AdminGuard
from fender.ratelimit._clientip import ClientIPResolver
from fender.ratelimit._config import RateLimitConfig
from fender.runtime._drain import runtime_directory
from fender.runtime._launch import import_app, parse_app
from fender.settings import Settings, load_settings, production_findings, report_only
from fender.stores._url import parse_redis_url

__all__ = ["DoctorCheck", "Report", "diagnose", "doctor_check", "load_app", "over_memory"]

DoctorCheck = Callable[[Settings], Iterable[Finding]]
CRITICAL_SHARE = 0.85
"""Workers x their size above this share of the memory limit fail ``fender doctor``."""

_CHECKS: list[DoctorCheck] = []


def doctor_check(check: DoctorCheck) -> DoctorCheck:
    """Register ``check`` to run in ``fender doctor``; returns it unchanged (a decorator)."""
    if check not in _CHECKS:
        _CHECKS.append(check)
    return check


doctor_check(production_findings)


def _built(check: str, build: Callable[[], object], passed: str) -> Finding:
    """Run ``build`` as ``fender.install`` would; its ConfigurationError becomes a failure."""
    try:
        build()
    except ConfigurationError as exc:
        reason = f"{exc.field}={exc.value!r} is invalid: fender.install would refuse it"
        return Finding(check, Status.FAIL, reason, f"set {exc.field} to {exc.expected}", exc.field)
    return Finding(check, Status.PASS, passed)


@doctor_check
def _rate_limit_check(settings: Settings) -> list[Finding]:
    """The rate-limit configuration install builds: limits, paths, allow-list, proxies."""
    passed = "FENDER_RATE_LIMIT*, FENDER_TRUSTED_PROXIES and FENDER_TRUSTED_HOPS parse"
    return [_built("rate_limit", lambda: RateLimitConfig.from_settings(settings), passed)]


@doctor_check
def _admin_check(settings: Settings) -> list[Finding]:
    """The guard of the protected endpoints install builds (FENDER_ADMIN_*)."""
    # The guard only keeps the resolver; a bad proxy setting is the rate_limit check's finding.
    passed = f"FENDER_ADMIN_* parse (policy {settings.admin_policy})"
    return [_built("admin", lambda: AdminGuard(settings, ClientIPResolver()), passed)]


@doctor_check
def _security_check(settings: Settings) -> list[Finding]:
    """The policies install compiles: CSP, HSTS, CORS origins, allowed hosts."""
    from fender.security import CorsPolicy, HostPolicy, SecurityHeaders

    def build() -> None:
        SecurityHeaders.from_settings(settings)
        CorsPolicy.from_settings(settings)
        HostPolicy.parse(settings.allowed_hosts)

    passed = "FENDER_CSP, FENDER_HSTS_*, FENDER_CORS_* and FENDER_ALLOWED_HOSTS compile"
    return [_built("security", build, passed)]


@doctor_check
def _database_check(settings: Settings) -> list[Finding]:
    """The engine install builds when DATABASE_URL is set: dialect and driver load; migrations."""
    if "database_url" not in settings.model_fields_set:
        return []  # install builds no engine either: nothing is configured to check

    try:
        engine = engine_from_settings(settings)  # no connection: the engine is lazy
    except ConfigurationError as exc:
        # install still boots (the app's own driver may read the URL): the check warns.
        reason = f"{exc.field}={exc.value!r}: fender's database check cannot run, it will warn"
        return [Finding("database_driver", Status.WARN, reason, f"use {exc.expected}", exc.field)]
    try:
        # With the app's Alembic config: connects, and says whether the database is at head.
        migrations = migration_findings(settings, engine)
    finally:
        engine.dispose()
    passed = Finding("database_driver", Status.PASS, "DATABASE_URL's dialect and driver load")
    return [passed, *migrations]


@doctor_check
def _redis_check(settings: Settings) -> list[Finding]:
    """REDIS_URL as the Redis client reads it: hosts, ports, db, query options; no connection."""
    if not settings.redis_url:
        return []
    passed = "REDIS_URL parses (hosts, ports, database, options; not connected)"
    return [_built("redis_url", lambda: parse_redis_url(settings.redis_url), passed)]


@doctor_check
def _runtime_dir_check(settings: Settings) -> list[Finding]:
    """FENDER_RUNTIME_DIR can be created or is writable, and is this user's alone."""
    directory = runtime_directory(settings)
    problem = _not_writable(directory)
    if not problem and directory.exists():
        try:
            check_private(directory)
        except OSError as exc:
            problem = f"is unsafe ({exc})"
    if not problem:
        state = "is writable" if Path(directory).is_dir() else "can be created"
        return [Finding("runtime_dir", Status.PASS, f"FENDER_RUNTIME_DIR {directory} {state}")]
    return [
        Finding(
            "runtime_dir",
            Status.FAIL if settings.enforces_production() else Status.WARN,
            f"FENDER_RUNTIME_DIR {directory} {problem}: `fender drain` and POST /health/drain "
            "would fail",
            "set FENDER_RUNTIME_DIR to a directory the server's user alone can write, or to "
            "a missing one it can create (e.g. /run/fender/drain on an emptyDir volume: fender "
            "creates it 0700)",
            "FENDER_RUNTIME_DIR",
        )
    ]


def _not_writable(directory: Path) -> str:
    """Why the drain flag could not be written under ``directory``; ``""`` when it could.

    Probes by writing, not with ``os.access`` (which says yes to root everywhere), and leaves
    nothing behind: a missing directory is not created, its nearest existing parent is tried.
    """
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be created: {existing} is not a directory"
    try:
        if existing == directory:
            handle, probe = tempfile.mkstemp(prefix=".fender-doctor-", dir=directory)
            os.close(handle)
            Path(probe).unlink()
        else:
            Path(tempfile.mkdtemp(prefix=".fender-doctor-", dir=existing)).rmdir()
    except OSError as exc:
        where = "is not writable" if existing == directory else f"cannot be created in {existing}"
        return f"{where} ({exc.strerror or exc})"
    return ""


@doctor_check
def _workers_check(settings: Settings) -> list[Finding]:
    """Workers x FENDER_WORKER_MEMORY_MB against 85% of the container's memory limit."""
    from fender.runtime._launch import current_plan
    from fender.runtime._serve import configured_kind

    plan = current_plan(settings, configured_kind(settings))
    limits = plan.limits
    findings = [
        Finding("container", Status.WARN, problem, "check the cgroup files; set MEMORY_LIMIT_MB")
        for problem in limits.problems
    ]
    asked = settings.web_workers or plan.workers.workers
    limit_mb = limits.memory_mb
    over = over_memory(asked, settings.worker_memory_mb, limit_mb)
    if over is not None:
        findings.append(
            Finding(
                "workers",
                Status.FAIL,
                f"{over} limit ({limits.memory_source}): the container would be OOM-killed "
                f"(fender run serves {plan.workers.workers})",
                f"unset WEB_WORKERS/GUNICORN_WORKERS (fender run sizes it), or set at most "
                f"{plan.workers.memory_workers}",
                "WEB_WORKERS",
            )
        )
    else:
        findings.append(
            Finding(
                "workers",
                Status.PASS,
                f"{asked} workers ({plan.workers.reason}) fit in "
                + ("unbounded memory" if limit_mb is None else f"{limit_mb:.0f} MiB"),
            )
        )
    return findings


def over_memory(workers: int, worker_mb: float, limit_mb: float | None) -> str | None:
    """Why ``workers`` of ``worker_mb`` do not fit ``limit_mb``; None when they do.

    The reason ends with the limit, for the caller to say which: "... of the 512 MiB".
    """
    need_mb = workers * worker_mb
    if limit_mb is None or need_mb <= CRITICAL_SHARE * limit_mb:
        return None
    return (
        f"{workers} workers x {worker_mb:g} MiB = {need_mb:.0f} MiB is over "
        f"{CRITICAL_SHARE:.0%} of the {limit_mb:.0f} MiB"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """All findings of one doctor run, and the exit code they call for."""

    findings: tuple[Finding, ...]

    @property
    def status(self) -> Status:
        """The worst status among the findings."""
        return Status.worst(f.status for f in self.findings)

    def exit_code(self, *, strict: bool = False) -> int:
        """0 when ready, 1 for warnings under ``strict``, 2 for any failure."""
        status = self.status
        if status is Status.FAIL:
            return 2
        if status is Status.WARN and strict:
            return 1
        return 0


def load_app(spec: str) -> object:
    """Import the app ``spec`` names, as gunicorn does: ``module:attr`` or ``module:factory()``.

    ``attr`` may be dotted (``module:api.app``); ``factory()`` is called without arguments.
    The module is imported from ``sys.path`` (the command line puts the working directory
    first).

    Raises:
        ConfigurationError: ``spec`` is not of that form (field ``--app``).
        Exception: whatever importing the module or calling the factory raises.
    """
    return import_app(*parse_app(spec, field="--app"))


def _is_factory(target: object) -> bool:
    """A function that cannot be a WSGI or ASGI app (they take 2 or 3 arguments): a factory."""
    if not inspect.isfunction(target):
        return False
    required = [
        p
        for p in inspect.signature(target).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) < 2  # noqa: PLR2004


def diagnose(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    app: object = None,
) -> Report:
    """Load the settings and run every registered check; a check that raises is a failure.

    Args:
        environ: variables to read instead of ``os.environ``.
        env_file: a dotenv file read under the environment; ``None`` reads none.
        app: the app to judge with the environment, or a ``module:attr`` string naming it
            (:func:`load_app`). It is imported under :func:`~fender.settings.report_only`: an
            app that installs fender at import does not stop at the first broken rule. An app
            that cannot be imported is a failure of the ``app`` check.

    Raises:
        ConfigurationError: ``app`` is a string not of the form ``module:attr``.
    """
    try:
        settings = load_settings(environ, env_file=env_file)
    except ConfigurationError as exc:
        fix = f"correct {exc.field} in the environment or the .env file"
        return Report((Finding("settings", Status.FAIL, str(exc), fix, exc.field),))
    findings: list[Finding] = []
    if isinstance(app, str):
        spec, parsed = app, parse_app(app, field="--app")
        try:
            with report_only():
                app = import_app(*parsed)
        except Exception as exc:  # the app's own error, a ConfigurationError of its settings too
            reason = f"importing {spec} raised {type(exc).__name__}: {exc}"
            fix = "run fender doctor from the app's directory, with the app's environment"
            findings.append(Finding("app", Status.FAIL, reason, fix, "--app"))
            app = None
        if not parsed[2] and _is_factory(app):
            # Judging a factory says nothing of the app it makes.
            reason = f"{spec} is a function that takes no request: an app factory?"
            fix = f"name the app it makes: fender doctor --app '{spec}()'"
            findings.append(Finding("app", Status.FAIL, reason, fix, "--app"))
            app = None
    for check in tuple(_CHECKS):  # a check may register another while we run
        try:
            if check is production_findings and app is not None:
                findings.extend(app_findings(app, settings))
            else:
                findings.extend(check(settings))
        except Exception as exc:
            name = getattr(check, "__name__", repr(check))
            reason = f"check raised {type(exc).__name__}: {exc}"
            findings.append(Finding(name, Status.FAIL, reason, "report this as a fender bug"))
    return Report(tuple(findings))
