"""The paths fender's own endpoints take, and the one check that no two of them collide."""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ADMIN_FIXED_PATHS",
    "ADMIN_SUBPATHS",
    "ALIAS_PATHS",
    "FIXED_PATHS",
    "HEALTH_SUBPATHS",
    "PATH",
    "PATH_FIELDS",
    "path_groups",
    "taken",
]

# fender's own paths besides FENDER_METRICS_PATH, as fender.http.health serves them: the health
# family under FENDER_HEALTH_PREFIX, fixed pages, and the aliases FENDER_HEALTH_ALIASES adds.
HEALTH_SUBPATHS: Final = ("", "/live", "/ready", "/quick", "/detailed", "/version", "/drain")
FIXED_PATHS: Final = ("/status", "/status/style.css", "/circuit-breaker")
ALIAS_PATHS: Final = ("/healthz", "/livez", "/readyz")
# Of those, the ones behind the admin guard (FENDER_ADMIN_TOKEN or CIDRs): a prober gets 404.
ADMIN_SUBPATHS: Final = ("/detailed", "/drain")
ADMIN_FIXED_PATHS: Final = ("/status", "/circuit-breaker")
# An endpoint path: URL-safe characters only, so that it needs no escaping anywhere.
PATH: Final = re.compile(r"/[A-Za-z0-9._~/-]*")
# The variables of the paths a user chooses -> their settings fields.
PATH_FIELDS: Final = {
    "FENDER_METRICS_PATH": "metrics_path",
    "FENDER_HEALTH_PREFIX": "health_prefix",
}


def path_groups(
    *, metrics_path: str | None, health_prefix: str, health_aliases: bool
) -> list[tuple[str, tuple[str, ...]]]:
    """(variable, paths) of fender's endpoints in the order install adds them; fixed: ``""``.

    ``metrics_path`` is ``None`` when metrics are off.
    """
    groups: list[tuple[str, tuple[str, ...]]] = []
    if metrics_path is not None:
        groups.append(("FENDER_METRICS_PATH", (metrics_path,)))
    prefix = health_prefix
    groups.append(("FENDER_HEALTH_PREFIX", tuple(prefix + sub for sub in HEALTH_SUBPATHS)))
    groups.append(("", FIXED_PATHS))
    if health_aliases:
        groups.append(("FENDER_HEALTH_ALIASES", ALIAS_PATHS))
    return groups


def taken(path: str, owner: str, prefix: str) -> str:
    """Why ``path`` is not free: which of fender's endpoints ``owner`` puts there."""
    if owner == "FENDER_HEALTH_PREFIX":
        return f"{path} is a health endpoint under FENDER_HEALTH_PREFIX={prefix}"
    if owner == "FENDER_HEALTH_ALIASES":
        return f"{path} is a health alias, served because FENDER_HEALTH_ALIASES is on"
    return f"{path} is one of fender's fixed paths ({', '.join(FIXED_PATHS)})"
