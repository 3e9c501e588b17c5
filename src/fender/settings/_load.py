"""Loading the settings from the environment and an optional ``.env`` file.

A value that cannot be right anywhere (a health status of ``abc``, an unknown log level) is
a :class:`~fender.errors.ConfigurationError` naming the variable that was set; a secret in it
is shown masked (:func:`fender.errors.mask`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fender.errors import ConfigurationError
from fender.settings._environ import reading, source_environ
from fender.settings._fields import ConflictError
from fender.settings._model import Settings, env_vars, secret_env_names

__all__ = ["load_settings"]

_VARS = {var.field: var for var in env_vars()}
_FIELD_OF_NAME = {name: var.field for var in env_vars() for name in (var.name, *var.aliases)}


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings`, turning any validation error into :class:`ConfigurationError`.

    Args:
        environ: variables to read instead of ``os.environ`` (tests, ``fender doctor``).
        env_file: a dotenv file read under the environment; ``None`` reads none.
        overrides: field values that win over the environment (keyword arguments to
            ``fender.install`` end up here).

    Example:
        >>> load_settings({"FENDER_ENV": "development"}, env_file=None).env
        'development'
    """
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise ConfigurationError(
            "option", unknown[0], f"a settings field, one of {', '.join(Settings.model_fields)}"
        )
    with reading(environ):
        try:
            return Settings(_env_file=env_file, **overrides)
        except ValidationError as exc:
            raise _configuration_error(exc, environ) from None


def _configuration_error(
    exc: ValidationError, environ: Mapping[str, str] | None
) -> ConfigurationError:
    """The first validation error, naming the variable that was set and masking secrets."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConflictError):
        field, value, expected = cause.field, cause.value, str(cause)
        loc = field
    else:
        loc = str(error["loc"][0]) if error["loc"] else "settings"
        field = _FIELD_OF_NAME.get(loc.upper(), loc)
        value = error.get("input")
        expected = str(error["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")
        choices = _VARS[field].choices if field in _VARS else ()
        if choices:
            expected = f"one of {' | '.join(choices)}"
    default_name = _VARS[field].name if field in _VARS else loc
    name = _name_in_use(field, environ) or default_name
    return ConfigurationError(name, value, expected, secret=name in secret_env_names())


def _name_in_use(field: str, environ: Mapping[str, str] | None) -> str | None:
    """The variable that set ``field``: the one to name in an error (APP_ENV, not FENDER_ENV)."""
    source = {k.upper(): v for k, v in source_environ(environ).items()}
    names = [n for n, f in _FIELD_OF_NAME.items() if f == field]
    return next((n for n in names if source.get(n)), None)
