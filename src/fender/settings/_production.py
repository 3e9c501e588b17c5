"""The production rules over values: a secret key, the debug flag, the admin token.

Each rule returns a :class:`~fender._status.Finding`; ``bad`` is the status of a broken rule
(``fail`` where production is enforced, ``warn`` in development and testing mode).
:meth:`Settings.require_production_ready <fender.settings.Settings.require_production_ready>`
raises :class:`ProductionRuleError` for the first that fails; :func:`report_only` turns that
off while ``fender doctor`` imports an app.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from fender._status import Finding, Status
from fender.errors import ConfigurationError, mask
from fender.settings._secrets import MIN_SECRET_KEY_DISTINCT, MIN_SECRET_KEY_LENGTH, secret_weakness

__all__ = [
    "ProductionRuleError",
    "admin_token_finding",
    "debug_finding",
    "report_only",
    "reporting_only",
    "secret_key_finding",
]

# While set (fender doctor importing an app), the production rules report and never raise.
_REPORT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fender_report_only", default=False
)


@contextlib.contextmanager
def report_only() -> Iterator[None]:
    """Within the block, the production rules report their findings and never raise.

    ``fender doctor --app`` imports the app under it: the app's ``fender.install`` would
    otherwise stop the import at the first broken rule, before the doctor lists them all.
    A context variable: other threads and tasks are not affected.
    """
    token = _REPORT_ONLY.set(True)
    try:
        yield
    finally:
        _REPORT_ONLY.reset(token)


def reporting_only() -> bool:
    """True inside :func:`report_only`."""
    return _REPORT_ONLY.get()


class ProductionRuleError(ConfigurationError):
    """A production rule is broken: the message says what is wrong, then the fix.

    ``field``, ``value`` (masked when secret) and ``expected`` (the fix) are those of
    :class:`~fender.errors.ConfigurationError`; ``finding`` is the rule's finding.
    """

    def __init__(
        self, finding: Finding, value: object, *, secret: bool, env_default: bool = False
    ) -> None:
        """Describe the failed ``finding`` about ``value``; ``env_default``: FENDER_ENV unset."""
        super().__init__(finding.field or finding.check, value, finding.fix, secret=secret)
        self.finding = finding
        why = "the default when FENDER_ENV is not set" if env_default else "FENDER_ENV"
        # ConfigurationError's sentence ("X=v is invalid: expected E") fits a malformed value;
        # a broken rule reads better as the problem first, then the fix.
        self.args = (f"not ready for production ({why}): {finding.reason}; fix: {finding.fix}",)


def secret_key_finding(key: str, bad: Status, *, needed: bool | None) -> Finding:
    """The environment's SECRET_KEY (``""`` when unset): judged when set, or when needed."""
    fix = (
        "set SECRET_KEY to the output of python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))'"
    )
    if not key and needed is False:
        reason = "SECRET_KEY is not set, and the app does not sign with it"
        return Finding("secret_key", Status.PASS, reason)
    if not key and needed is None:
        return Finding(
            "secret_key",
            Status.WARN,
            "SECRET_KEY is not set; whether the app signs with it was not judged",
            "run fender doctor --app module:attr to judge the app's own key; "
            f"if the app signs sessions or tokens with SECRET_KEY, {fix}",
            "SECRET_KEY",
        )
    weakness = secret_weakness(key)
    if weakness:
        return Finding("secret_key", bad, f"SECRET_KEY {weakness}", fix, "SECRET_KEY")
    return Finding("secret_key", Status.PASS, f"SECRET_KEY is set ({mask(key)})")


def debug_finding(debug: bool, bad: Status) -> Finding:  # noqa: FBT001  (the flag judged)
    """Debug mode: ``bad`` when on."""
    if debug:
        return Finding(
            "debug", bad, "debug mode is on", "unset FENDER_DEBUG / FLASK_DEBUG", "FENDER_DEBUG"
        )
    return Finding("debug", Status.PASS, "debug mode is off")


def admin_token_finding(token: str, bad: Status) -> Finding:
    """FENDER_ADMIN_TOKEN, when set: ``bad`` when short or made of few distinct characters."""
    if len(token) < MIN_SECRET_KEY_LENGTH or len(set(token)) < MIN_SECRET_KEY_DISTINCT:
        return Finding(
            "admin_token",
            bad,
            f"FENDER_ADMIN_TOKEN is guessable ({len(token)} characters)",
            f"use at least {MIN_SECRET_KEY_LENGTH} random characters",
            "FENDER_ADMIN_TOKEN",
        )
    return Finding("admin_token", Status.PASS, "FENDER_ADMIN_TOKEN is strong")
