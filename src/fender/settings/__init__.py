"""Settings from the environment (and an optional ``.env``), validated when the app is built.

The names are the ones services already use (``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL``,
``LOG_LEVEL``...); everything fender adds is ``FENDER_*``. Loading never prints or logs a
secret: errors show secrets masked (:func:`fender.errors.mask`).

Two levels of checking:

* :func:`load_settings` rejects values that cannot be right anywhere (a health status of
  ``abc``, an unknown log level) with :class:`~fender.errors.ConfigurationError`;
* :func:`production_findings` says what is not ready for production (a short ``SECRET_KEY``,
  debug on); :meth:`Settings.require_production_ready` raises on the first failure when the
  environment is production, and ``fender doctor`` prints them all.

These rules judge the environment alone. The secret and debug flag the app itself uses are
judged by :mod:`fender.apps`, with the same :func:`secret_weakness`.

Testing mode (``FENDER_TESTING``, else on under pytest or for an app in its own testing mode)
keeps the production rules but turns their failures into warnings, as in development: an app's
test suite runs unchanged with fender added.

One concept a module: ``_model`` (the fields with their one declared default), ``_fields``
(how a field is declared and described), ``_checks`` (checks of single values), ``_load`` and
``_environ`` (reading the environment), ``_production`` (the rules over values), ``_findings``
(the report ``fender doctor`` prints), ``_secrets`` (placeholder keys), ``_redact`` (what looks
like a secret in text: URL passwords, ``name=value`` pairs; shared with the health outputs and
the logs), ``_paths`` (fender's own endpoint paths).
"""

from fender.settings._checks import POSTGRES_DRIVER, REDIS_SCHEMES
from fender.settings._environ import running_under_tests
from fender.settings._fields import EnvVar
from fender.settings._findings import production_findings
from fender.settings._load import load_settings
from fender.settings._model import (
    Settings,
    endpoint_paths,
    env_name,
    env_vars,
    field_default,
    production_error,
)
from fender.settings._paths import (
    ADMIN_FIXED_PATHS,
    ADMIN_SUBPATHS,
    ALIAS_PATHS,
    FIXED_PATHS,
    HEALTH_SUBPATHS,
)
from fender.settings._production import ProductionRuleError, report_only, reporting_only
from fender.settings._redact import redact_url
from fender.settings._secrets import (
    MIN_SECRET_KEY_BYTES,
    MIN_SECRET_KEY_DISTINCT,
    MIN_SECRET_KEY_LENGTH,
    PHRASE_SHARE,
    PLACEHOLDER_PREFIXES,
    PLACEHOLDER_SECRET_KEYS,
    PLACEHOLDER_WORDS,
    secret_weakness,
)

__all__ = [
    "ADMIN_FIXED_PATHS",
    "ADMIN_SUBPATHS",
    "ALIAS_PATHS",
    "FIXED_PATHS",
    "HEALTH_SUBPATHS",
    "MIN_SECRET_KEY_BYTES",
    "MIN_SECRET_KEY_DISTINCT",
    "MIN_SECRET_KEY_LENGTH",
    "PHRASE_SHARE",
    "PLACEHOLDER_PREFIXES",
    "PLACEHOLDER_SECRET_KEYS",
    "PLACEHOLDER_WORDS",
    "POSTGRES_DRIVER",
    "REDIS_SCHEMES",
    "EnvVar",
    "ProductionRuleError",
    "Settings",
    "endpoint_paths",
    "env_name",
    "env_vars",
    "field_default",
    "load_settings",
    "production_error",
    "production_findings",
    "redact_url",
    "report_only",
    "reporting_only",
    "running_under_tests",
    "secret_weakness",
]
