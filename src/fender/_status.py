"""Check outcomes shared by ``fender doctor`` and the health checks: pass, warn, fail."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

__all__ = ["Finding", "Status"]


class Status(enum.StrEnum):
    """Outcome of a check: ``pass``, ``warn`` (degraded) or ``fail``; ordered by severity."""

    PASS = "pass"  # noqa: S105  (a status, not a password)
    WARN = "warn"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 for pass, 1 for warn, 2 for fail."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: Iterable[Status]) -> Status:
        """Return the most severe status, ``pass`` for none."""
        return max(statuses, key=_SEVERITY.__getitem__, default=cls.PASS)


_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One line of ``fender doctor``: a check's status, the reason and the fix."""

    check: str
    status: Status
    reason: str
    fix: str = ""
    field: str = ""
