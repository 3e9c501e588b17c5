"""Whether the database is at Alembic's head: a readiness check and a ``fender doctor`` finding.

Only for projects that use Alembic: the file FENDER_ALEMBIC_CONFIG names (``alembic.ini`` in
the working directory by default) exists. Alembic is imported then, not before: it is the
app's dependency, not fender's. The revisions come from the scripts that config names; the
database's from its ``alembic_version`` table, read over fender's engine (DATABASE_URL).

Pending migrations fail the check, which is not critical: readiness says ``warn`` (HTTP 200)
naming them, and the instance keeps serving, since migrations that run after the rollout are
a common, safe practice. ``fender doctor`` fails instead. A database at a revision these
scripts do not know (a newer release migrated it, and this one is still rolling out) warns.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from fender._status import Finding, Status
from fender.health import Check, CheckResult
from fender.health._check import failure_result
from fender.settings import Settings

__all__ = ["MigrationStatus", "Migrations", "alembic_config", "migrations_check"]

_UPGRADE = "run `alembic upgrade head` (a release step or an init container)"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MigrationStatus:
    """Where the database stands against the migration scripts."""

    current: tuple[str, ...]
    """The revisions in the database's version table (empty: none applied)."""
    heads: tuple[str, ...]
    """The scripts' heads."""
    pending: tuple[str, ...] = ()
    """Revisions not applied yet, oldest first, as ``revision (message)``."""
    unknown: tuple[str, ...] = ()
    """Revisions in the database that the scripts do not have."""

    @property
    def at_head(self) -> bool:
        """Every script revision is applied, and nothing unknown is."""
        return not self.pending and not self.unknown

    def result(self) -> CheckResult:
        """The check's verdict: pass at head, fail with pending, warn when ahead or unknown."""
        details: dict[str, object] = {"current": list(self.current), "heads": list(self.heads)}
        if self.unknown:
            return CheckResult(
                Status.WARN,
                f"database at {', '.join(self.unknown)}, unknown to this release's migrations "
                "(a newer release migrated it?)",
                details=details,
            )
        if self.pending:
            count = len(self.pending)
            return CheckResult(
                Status.FAIL,
                f"{count} pending migration{'s' if count > 1 else ''}: {', '.join(self.pending)}",
                observed_value=count,
                details={**details, "pending": list(self.pending)},
            )
        where = ", ".join(self.heads) or "no migrations"
        return CheckResult(Status.PASS, f"at head ({where})", observed_value=0, details=details)


class Migrations:
    """The migration scripts of one Alembic config, loaded once (on first use)."""

    def __init__(self, config_path: Path) -> None:
        """Read ``config_path`` (an alembic.ini) when first asked."""
        self.config_path = config_path
        self._lock = threading.Lock()

    @functools.cached_property
    def _script(self) -> Any:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config(str(self.config_path))
        location = config.get_main_option("script_location") or ""
        # Relative to the working directory, as alembic reads it; else to the ini file.
        relative = ":" not in location and not Path(location).is_absolute()
        if location and relative and not Path(location).exists():
            config.set_main_option("script_location", str(self.config_path.parent / location))
        # Alembic's prepend_sys_path is for its own command; the app's sys.path stays as it is.
        saved = list(sys.path)
        try:
            script = ScriptDirectory.from_config(config)
            script.get_heads()  # loads every revision file now
        finally:
            sys.path[:] = saved
        return script

    def status(self, engine: Engine) -> MigrationStatus:
        """Compare the database's version table with the scripts (one query)."""
        from alembic.runtime.migration import MigrationContext

        with self._lock:
            script = self._script
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
        heads = tuple(script.get_heads())
        known = {rev.revision for rev in script.walk_revisions()}
        unknown = tuple(rev for rev in current if rev not in known)
        if unknown:
            return MigrationStatus(current=current, heads=heads, unknown=unknown)
        applied = {rev.revision for rev in script.iterate_revisions(current, "base")}
        pending = [
            f"{rev.revision} ({rev.doc})" if rev.doc else rev.revision
            for rev in script.walk_revisions()
            if rev.revision not in applied
        ]
        return MigrationStatus(current=current, heads=heads, pending=tuple(reversed(pending)))


def alembic_config(settings: Settings) -> Path | None:
    """The Alembic config FENDER_ALEMBIC_CONFIG names, when it exists; else None."""
    if not settings.alembic_config:
        return None
    path = Path(settings.alembic_config)
    return path if path.is_file() else None


def _not_installed(path: Path) -> str | None:
    try:
        importlib.import_module("alembic")
    except ImportError:
        return f"{path} found, but alembic is not installed: pip install alembic"
    return None


def migrations_check(path: Path, engine: Engine, *, name: str = "database_migrations") -> Check:
    """A readiness check (not critical): the database is at the head of ``path``'s scripts."""
    problem = _not_installed(path)
    migrations = Migrations(path)

    def database_migrations() -> CheckResult:
        if problem:
            return CheckResult(Status.WARN, problem)
        return migrations.status(engine).result()

    return Check(
        name=name,
        func=database_migrations,
        critical=False,
        component_type="datastore",
        measurement="pending",
    )


def migration_findings(settings: Settings, engine: Engine) -> list[Finding]:
    """``fender doctor``: fail with pending migrations named; warn when it cannot tell."""
    path = alembic_config(settings)
    if path is None:
        return []
    check = "database_migrations"
    problem = _not_installed(path)
    if problem:
        return [Finding(check, Status.WARN, problem, "install alembic where doctor runs")]
    try:
        status = Migrations(path).status(engine)
    except Exception as exc:  # a database that does not answer, scripts that do not load
        reason = f"cannot compare {path} with the database: {failure_result(exc).output}"
        return [Finding(check, Status.WARN, reason, "run doctor where the database is reached")]
    result = status.result()
    if result.status is Status.FAIL:
        return [Finding(check, Status.FAIL, result.output, _UPGRADE)]
    fix = "" if result.status is Status.PASS else "deploy the release that has those migrations"
    return [Finding(check, result.status, result.output, fix)]
