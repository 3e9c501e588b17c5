"""The production-readiness report over the settings: what ``fender doctor`` prints.

:func:`production_findings` lists every rule, passed or not, with the advice that is no rule
(SQLite, no Redis); the rules that can fail are the model's own
(:meth:`~fender.settings.Settings.require_production_ready` raises for the first). The secret
and debug flag the app itself uses are judged by :mod:`fender.apps`, which adds its
findings to these.
"""

from __future__ import annotations

from fender._status import Finding, Status
from fender.settings._model import Settings, rule_findings
from fender.settings._redact import redact_url

__all__ = ["production_findings"]


def production_findings(
    settings: Settings, *, app_testing: bool = False, secret_key_needed: bool | None = None
) -> list[Finding]:
    """Judge ``settings`` for production; in development, what would fail is only a warning.

    Args:
        settings: the settings to judge.
        app_testing: the app is in its own testing mode (Flask's ``app.testing``): with
            ``FENDER_TESTING`` unset, testing mode turns failures into warnings.
        secret_key_needed: whether the app signs with the environment's ``SECRET_KEY``.
            A ``SECRET_KEY`` that is set is judged whatever this says (something reads it).
            Unset, it fails when ``True``, passes when ``False`` (the app signs nothing, or
            with a key of its own that :mod:`fender.apps` judges) and only warns when
            ``None``: the app was not looked at.
    """
    bad = Status.FAIL if settings.enforces_production(app_testing=app_testing) else Status.WARN
    return [
        _environment_finding(settings, bad, app_testing=app_testing),
        *rule_findings(settings, bad, secret_key_needed=secret_key_needed),
        _database_finding(settings),
        _redis_finding(settings),
    ]


def _environment_finding(settings: Settings, bad: Status, *, app_testing: bool) -> Finding:
    """FENDER_ENV, and whether testing mode relaxes the production rules."""
    if not settings.is_production:
        return Finding(
            "environment",
            Status.WARN,
            f"FENDER_ENV is {settings.env}",
            "set FENDER_ENV=production in the deployed environment",
            "FENDER_ENV",
        )
    if bad is Status.WARN:
        why = _testing_reason(settings, app_testing=app_testing)
        return Finding(
            "environment",
            Status.WARN,
            f"FENDER_ENV is production, but testing mode is on ({why}): the production rules "
            "only warn",
            "set FENDER_TESTING=0 to enforce them",
            "FENDER_TESTING",
        )
    return Finding("environment", Status.PASS, "FENDER_ENV is production")


def _database_finding(settings: Settings) -> Finding:
    """DATABASE_URL: advice only (SQLite is one host), never a failure."""
    if "database_url" not in settings.model_fields_set:
        # The embedded default is there to run with nothing installed: no database is
        # configured and fender checks none, which is no warning about SQLite.
        return Finding("database", Status.PASS, "no database is configured (DATABASE_URL is unset)")
    if settings.database_url.startswith("sqlite"):
        return Finding(
            "database",
            Status.WARN,
            "DATABASE_URL is SQLite: one file, one host",
            "set DATABASE_URL=postgresql+psycopg://... for a shared database",
            "DATABASE_URL",
        )
    return Finding("database", Status.PASS, f"DATABASE_URL is {redact_url(settings.database_url)}")


def _redis_finding(settings: Settings) -> Finding:
    """REDIS_URL: advice only (without it limits and cache are per process), never a failure."""
    if settings.redis_url:
        return Finding("redis", Status.PASS, f"REDIS_URL is {redact_url(settings.redis_url)}")
    return Finding(
        "redis",
        Status.WARN,
        "REDIS_URL is empty: rate limits and cache are per process",
        "set REDIS_URL=redis://host:6379/0 to share them across instances",
        "REDIS_URL",
    )


def _testing_reason(settings: Settings, *, app_testing: bool) -> str:
    """Why testing mode is on, for a finding; only called when it is."""
    if settings.testing:
        return "FENDER_TESTING is on"
    if app_testing:
        return "the app is in its testing mode (Flask's TESTING)"
    return "this is a pytest run (PYTEST_VERSION is set)"
