"""``fender doctor``: production-readiness checks over the current environment.

A doctor check is a plain function from :class:`~fender.settings.Settings` to findings; register
one with :func:`doctor_check`. The settings rules are built in; later subsystems (dependencies
reachable, worker count against memory) register theirs the same way. Nothing here prints:
``fender.cli`` renders the findings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from fender._status import Finding, Status
from fender.errors import ConfigurationError
from fender.settings import Settings, load_settings, production_findings

__all__ = ["DoctorCheck", "Report", "diagnose", "doctor_check"]

DoctorCheck = Callable[[Settings], Iterable[Finding]]

_CHECKS: list[DoctorCheck] = []


def doctor_check(check: DoctorCheck) -> DoctorCheck:
    """Register ``check`` to run in ``fender doctor``; returns it unchanged (a decorator)."""
    if check not in _CHECKS:
        _CHECKS.append(check)
    return check


doctor_check(production_findings)


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


def diagnose(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> Report:
    """Load the settings and run every registered check; a check that raises is a failure."""
    try:
        settings = load_settings(environ, env_file=env_file)
    except ConfigurationError as exc:
        fix = f"correct {exc.field} in the environment or the .env file"
        return Report((Finding("settings", Status.FAIL, str(exc), fix, exc.field),))
    findings: list[Finding] = []
    for check in tuple(_CHECKS):  # a check may register another while we run
        try:
            findings.extend(check(settings))
        except Exception as exc:
            name = getattr(check, "__name__", repr(check))
            reason = f"check raised {type(exc).__name__}: {exc}"
            findings.append(Finding(name, Status.FAIL, reason, "report this as a fender bug"))
    return Report(tuple(findings))
