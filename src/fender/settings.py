"""Settings from the environment (and an optional ``.env``), validated when the app is built.

The names are the ones services already use (``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL``,
``WEB_WORKERS``...); everything fender adds is ``FENDER_*``. Loading never prints or logs a
secret: errors show secrets masked (:func:`fender.errors.mask`).

Two levels of checking:

* :func:`load_settings` rejects values that cannot be right anywhere (a port of ``abc``, an
  unknown log level) with :class:`~fender.errors.ConfigurationError`;
* :func:`production_findings` says what is not ready for production (a short ``SECRET_KEY``,
  debug on); :meth:`Settings.require_production_ready` raises on the first failure when the
  environment is production, and ``fender doctor`` prints them all.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from fender._status import Finding, Status
from fender.errors import ConfigurationError, mask

__all__ = [
    "ALIAS_PATHS",
    "FIXED_PATHS",
    "HEALTH_SUBPATHS",
    "EnvVar",
    "Settings",
    "endpoint_paths",
    "env_vars",
    "load_settings",
    "production_findings",
    "redact_url",
    "render_env_example",
    "render_env_table",
]

Environment = Literal["development", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

MIN_SECRET_KEY_LENGTH = 32
# Distinct characters below which a key of the right length is still a pattern, not a secret.
MIN_SECRET_KEY_DISTINCT = 10
# Values copied from tutorials, templates and seed files; compared lower-cased and stripped.
PLACEHOLDER_SECRET_KEYS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "dev",
        "development",
        "development-secret-key",
        "insecure",
        "please-change-me",
        "production-secret-key",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "super-secret",
        "supersecret",
        "test",
        "your-secret-key",
        "your-secret-key-here",
        "your_secret_key",
        "your_secret_key_here",
    }
)
# The HTTP statuses a health answer may be mapped to (FENDER_HEALTH_*_STATUS).
MIN_HTTP_STATUS = 200
MAX_HTTP_STATUS = 599
# 1 TiB of cached values per worker: already absurd, and it keeps MiB x 2**20 a finite float.
MAX_MEMORY_TIER_MB = 1024 * 1024
# The environment load_settings() was given, when not os.environ (a contextvar: thread-safe).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "fender_settings_environ", default=None
)
PLACEHOLDER_PREFIXES = ("your-secret", "your_secret", "change-me", "changeme", "django-insecure")
# fender's own paths besides FENDER_METRICS_PATH, as fender.web.health serves them: the health
# family under FENDER_HEALTH_PREFIX, fixed pages, and the aliases FENDER_HEALTH_ALIASES adds.
HEALTH_SUBPATHS: Final = ("", "/live", "/ready", "/quick", "/detailed", "/version", "/drain")
FIXED_PATHS: Final = ("/status", "/status/style.css", "/circuit-breaker")
ALIAS_PATHS: Final = ("/healthz", "/livez", "/readyz")
# RFC 6750 b64token: all a client can send after "Bearer " (an HTTP header is read as latin-1,
# so a token outside ASCII could never match).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class _ConflictError(ValueError):
    """A value valid alone but not with the other settings; names the field to blame."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        super().__init__(expected)
        self.field = field
        self.value = value


def _env(*names: str, description: str, secret: bool = False, **kwargs: Any) -> Any:
    """Declare a field read from the first of ``names`` that is set."""
    return Field(
        validation_alias=AliasChoices(*names),
        description=description,
        json_schema_extra={"env": list(names), "secret": secret},
        **kwargs,
    )


class Settings(BaseSettings):
    """Every setting fender reads, with its environment names and embedded default.

    Build it with :func:`load_settings` (which turns validation errors into
    :class:`~fender.errors.ConfigurationError`); keyword arguments override the environment.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,
        frozen=True,
        validate_default=True,
        # inf passes every lower bound and breaks later (int(inf)); nan fails bounds confusingly.
        allow_inf_nan=False,
    )

    env: Environment = _env(
        "FENDER_ENV",
        "APP_ENV",
        "FLASK_ENV",
        default="production",
        description="development or production; production turns on the production rules.",
    )
    debug: bool = _env(
        "FENDER_DEBUG",
        "FLASK_DEBUG",
        default=False,
        description="Debug mode; must be off in production.",
    )
    secret_key: SecretStr | None = _env(
        "SECRET_KEY",
        default=None,
        secret=True,
        description=f"Signing key; required in production, at least {MIN_SECRET_KEY_LENGTH} "
        "random characters (python -c 'import secrets; print(secrets.token_urlsafe(48))').",
    )
    service_name: str = _env(
        "FENDER_SERVICE_NAME",
        default="app",
        min_length=1,
        description="Service name shown in logs, metrics and /health/version.",
    )
    release: str = _env(
        "FENDER_RELEASE",
        default="",
        description="Release id (image tag, git describe) shown in /health/version.",
    )
    commit: str = _env(
        "FENDER_COMMIT",
        "GIT_COMMIT",
        "SOURCE_COMMIT",
        default="",
        description="Commit the service was built from (app_build_info, /health/version).",
    )
    host: str = _env(
        "FENDER_HOST",
        default="127.0.0.1",
        min_length=1,
        description="Address `fender run` binds to; 0.0.0.0 inside a container.",
    )
    port: int = _env(
        "FENDER_PORT",
        "PORT",
        default=8000,
        ge=1,
        le=65535,
        description="Port `fender run` binds to.",
    )
    log_level: LogLevel = _env(
        "LOG_LEVEL",
        default="INFO",
        description="Lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    )
    log_format: Literal["auto", "json", "console"] = _env(
        "FENDER_LOG_FORMAT",
        default="auto",
        description="auto: JSON lines in production or when stdout is not a terminal, colored "
        "console lines otherwise.",
    )
    access_log: bool = _env(
        "FENDER_ACCESS_LOG",
        default=True,
        description="One JSON access event per request (request id, route, status, duration).",
    )
    access_log_own_endpoints: bool = _env(
        "FENDER_ACCESS_LOG_OWN_ENDPOINTS",
        default=False,
        description="Also log requests to fender's own endpoints (/metrics, /health...).",
    )
    server_access_log: bool = _env(
        "FENDER_SERVER_ACCESS_LOG",
        default=False,
        description="Keep gunicorn's and uvicorn's own access lines (fender's replace them).",
    )
    slow_request_ms: float = _env(
        "FENDER_SLOW_REQUEST_MS",
        default=1000.0,
        gt=0,
        description="A request slower than this logs a slow_request warning and is counted.",
    )
    database_url: str = _env(
        "DATABASE_URL",
        default="sqlite:///fender.db",
        min_length=1,
        secret=True,
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... for real "
        "(postgres:// and postgresql:// use psycopg too).",
    )
    db_pool_size: int = _env(
        "DB_POOL_SIZE", default=5, ge=1, le=1000, description="Connections kept open per worker."
    )
    db_max_overflow: int = _env(
        "DB_MAX_OVERFLOW",
        default=10,
        ge=0,
        le=1000,
        description="Extra connections a worker may open under load.",
    )
    db_pool_recycle: int = _env(
        "DB_POOL_RECYCLE",
        default=1800,
        ge=-1,
        description="Seconds after which a connection is replaced (-1: never).",
    )
    db_pool_timeout: float = _env(
        "DB_POOL_TIMEOUT",
        default=30.0,
        gt=0,
        description="Seconds to wait for a free connection before failing.",
    )
    redis_url: str = _env(
        "REDIS_URL",
        default="",
        secret=True,
        description="redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// URL; "
        "empty means the in-memory tier.",
    )
    celery_broker_url: str = _env(
        "CELERY_BROKER_URL",
        default="",
        secret=True,
        description="Celery broker; when set and celery is installed, a health check pings the "
        "broker and the workers.",
    )
    network_timeout_sec: float = _env(
        "NETWORK_TIMEOUT_SEC",
        default=0.5,
        gt=0,
        le=60,
        description="Connect and read timeout for network dependencies, in seconds.",
    )
    memory_limit_mb: int | None = _env(
        "MEMORY_LIMIT_MB",
        default=None,
        ge=16,
        description="Memory limit of the container in MiB; empty: the host's total memory.",
    )
    workers: int | None = _env(
        "WEB_WORKERS",
        "GUNICORN_WORKERS",
        default=None,
        ge=1,
        le=512,
        description="Worker processes; empty: min(CPU formula, memory / per-worker).",
    )
    threads: int = _env(
        "GUNICORN_THREADS",
        default=1,
        ge=1,
        le=256,
        description="Threads per worker (sync workers only).",
    )
    metrics_enabled: bool = _env(
        "METRICS_ENABLED", default=True, description="Serve Prometheus metrics on /metrics."
    )
    metrics_path: str = _env(
        "FENDER_METRICS_PATH",
        default="/metrics",
        description="Path of the Prometheus endpoint.",
    )
    metrics_max_series: int = _env(
        "FENDER_METRICS_MAX_SERIES",
        default=500,
        ge=10,
        description="Cap on label sets per HTTP metric; past it new routes count as _overflow.",
    )
    build_time: str = _env(
        "FENDER_BUILD_TIME",
        "BUILD_TIME",
        default="",
        description="When the image was built (ISO 8601), shown in /health/version.",
    )
    health_prefix: str = _env(
        "FENDER_HEALTH_PREFIX",
        default="/health",
        description="Path prefix of the health endpoints (/health, /health/live, ...).",
    )
    health_aliases: bool = _env(
        "FENDER_HEALTH_ALIASES",
        default=False,
        description="Also serve /healthz, /livez and /readyz.",
    )
    health_timeout: float = _env(
        "FENDER_HEALTH_TIMEOUT",
        default=2.0,
        gt=0,
        le=60,
        description="Default timeout of one health check, in seconds.",
    )
    health_deadline: float = _env(
        "FENDER_HEALTH_DEADLINE",
        default=3.0,
        gt=0,
        le=120,
        description="Deadline of a whole health run, in seconds.",
    )
    health_interval: float = _env(
        "FENDER_HEALTH_INTERVAL",
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds between background refreshes of the health snapshot.",
    )
    health_warn_status: int = _env(
        "FENDER_HEALTH_WARN_STATUS",
        default=200,
        ge=MIN_HTTP_STATUS,
        le=MAX_HTTP_STATUS,
        description="HTTP status of a health answer whose status is warn (degraded): 200-599.",
    )
    health_fail_status: int = _env(
        "FENDER_HEALTH_FAIL_STATUS",
        default=503,
        ge=MIN_HTTP_STATUS,
        le=MAX_HTTP_STATUS,
        description="HTTP status of a health answer whose status is fail: 200-599.",
    )
    liveness_max_lag: float = _env(
        "FENDER_LIVENESS_MAX_LAG",
        default=10.0,
        gt=0,
        description="Event-loop stall, in seconds, past which /health/live answers 503.",
    )
    admin_token: SecretStr | None = _env(
        "FENDER_ADMIN_TOKEN",
        default=None,
        secret=True,
        description="Bearer token for /health/detailed, /status, /circuit-breaker and "
        "POST /health/drain.",
    )
    admin_cidrs: str = _env(
        "FENDER_ADMIN_CIDRS",
        default="",
        description="Comma-separated CIDRs that may read protected endpoints without a token.",
    )
    admin_policy: Literal["never", "when-authorized", "always"] = _env(
        "FENDER_ADMIN_POLICY",
        default="when-authorized",
        description="Who sees the protected endpoints: never, when-authorized (token or CIDR), "
        "always.",
    )
    admin_deny_status: int = _env(
        "FENDER_ADMIN_DENY_STATUS",
        default=404,
        description="Answer to an unauthorized request for a protected endpoint: 404 or 401.",
    )
    shutdown_hook_timeout: float = _env(
        "FENDER_SHUTDOWN_HOOK_TIMEOUT",
        default=5.0,
        gt=0,
        le=300,
        description="Seconds each shutdown hook may take (closing pools, flushing) before the "
        "next one runs.",
    )
    runtime_dir: str = _env(
        "FENDER_RUNTIME_DIR",
        default="/tmp/fender",  # noqa: S108  (per container; FENDER_RUNTIME_DIR moves it)
        min_length=1,
        description="Directory shared by the workers of one server (the drain flag).",
    )
    drain_seconds: float = _env(
        "FENDER_DRAIN_SECONDS",
        default=10.0,
        ge=0,
        le=3600,
        description="How long `fender drain` waits after turning readiness off, for the load "
        "balancer to notice.",
    )
    redis_on_recovery: Literal["invalidate", "write_back"] = _env(
        "FENDER_REDIS_ON_RECOVERY",
        default="invalidate",
        description="Keys written to the memory tier during a Redis outage: deleted in Redis "
        "(invalidate) or written back (write_back) when it returns.",
    )
    redis_probe_interval: float = _env(
        "FENDER_REDIS_PROBE_INTERVAL",
        default=0.5,
        gt=0,
        le=60,
        description="Seconds between background pings while Redis is considered down.",
    )
    redis_max_connections: int = _env(
        "FENDER_REDIS_MAX_CONNECTIONS",
        default=50,
        ge=1,
        le=10000,
        description="Redis connection pool size per worker.",
    )
    memory_tier_max_entries: int = _env(
        "FENDER_MEMORY_TIER_MAX_ENTRIES",
        default=10000,
        ge=1,
        description="Entries the in-memory tier keeps (LRU beyond).",
    )
    memory_tier_max_mb: float = _env(
        "FENDER_MEMORY_TIER_MAX_MB",
        default=32.0,
        gt=0,
        le=MAX_MEMORY_TIER_MB,
        description="MiB of values the in-memory tier keeps (LRU beyond).",
    )
    memory_tier_max_stale: float = _env(
        "FENDER_MEMORY_TIER_MAX_STALE",
        default=300.0,
        ge=0,
        description="Seconds past its TTL a value may still be served, marked stale, while "
        "Redis is down.",
    )
    rate_limit_enabled: bool = _env(
        "FENDER_RATE_LIMIT_ENABLED",
        default=True,
        description="Rate-limit requests (fender's own endpoints are exempt).",
    )
    rate_limit: str = _env(
        "FENDER_RATE_LIMIT",
        default="100/minute burst 200",
        min_length=1,
        description="Default limit per client ip and route: '100/minute', '10/second; "
        "1000/hour', '100/minute burst 200'.",
    )
    rate_limit_algorithm: Literal["gcra", "sliding"] = _env(
        "FENDER_RATE_LIMIT_ALGORITHM",
        default="gcra",
        description="gcra (rate plus burst) or sliding (sliding-window counter).",
    )
    rate_limit_headers: Literal["ietf", "legacy", "both", "none"] = _env(
        "FENDER_RATE_LIMIT_HEADERS",
        default="ietf",
        description="RateLimit / RateLimit-Policy (ietf), X-RateLimit-* (legacy), both, none.",
    )
    rate_limit_fallback: Literal["local", "open", "closed"] = _env(
        "FENDER_RATE_LIMIT_FALLBACK",
        default="local",
        description="When Redis does not answer: limit in memory (local), allow (open) or "
        "reject (closed).",
    )
    rate_limit_slack: float = _env(
        "FENDER_RATE_LIMIT_SLACK",
        default=1.5,
        ge=1.0,
        le=10.0,
        description="On the memory fallback each instance allows ceil(limit / instances) x slack.",
    )
    rate_limit_timeout_ms: float = _env(
        "FENDER_RATE_LIMIT_TIMEOUT_MS",
        default=50.0,
        gt=0,
        le=5000,
        description="Longest wait for Redis on a rate-limit decision before the fallback decides.",
    )
    rate_limit_allow: str = _env(
        "FENDER_RATE_LIMIT_ALLOW",
        default="",
        description="Comma-separated ips or CIDRs never rate-limited.",
    )
    rate_limit_exempt: str = _env(
        "FENDER_RATE_LIMIT_EXEMPT",
        default="",
        description="Comma-separated path prefixes never rate-limited (fender's own endpoints "
        "always are).",
    )
    rate_limit_paths: str = _env(
        "FENDER_RATE_LIMIT_PATHS",
        default="",
        description="Per-route limits: 'route=limit' pairs separated by '|', e.g. "
        "'/login=5/minute|/search=30/minute'.",
    )
    instances: int | None = _env(
        "FENDER_INSTANCES",
        default=None,
        ge=1,
        le=100000,
        description="Number of service instances sharing the limits; empty: counted by a "
        "heartbeat in Redis.",
    )
    trusted_proxies: str = _env(
        "FENDER_TRUSTED_PROXIES",
        default="",
        description="Comma-separated CIDRs of proxies whose X-Forwarded-For / Forwarded is "
        "believed; empty: the socket peer is the client.",
    )
    trusted_hops: int | None = _env(
        "FENDER_TRUSTED_HOPS",
        default=None,
        ge=0,
        le=32,
        description="Instead of FENDER_TRUSTED_PROXIES: trust exactly this many proxy hops.",
    )
    max_staleness_ms: int = _env(
        "MAX_STALENESS_MS",
        default=5000,
        ge=0,
        description="How stale a replicated read may be, in milliseconds (AP mode).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003  (the signature pydantic calls)
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the mapping given to :func:`load_settings` instead of ``os.environ``."""
        environ = _ENVIRON.get()
        if environ is not None and isinstance(env_settings, EnvSettingsSource):
            # Same normalisation as for os.environ: names case-insensitive, empty means unset.
            env_settings.env_vars = {k.lower(): v for k, v in environ.items() if v != ""}
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("env", mode="before")
    @classmethod
    def _normalise_env(cls, value: object) -> object:
        aliases = {"dev": "development", "prod": "production"}
        if isinstance(value, str):
            value = value.strip().lower()
            return aliases.get(value, value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _normalise_level(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().upper()
            return "WARNING" if value == "WARN" else value
        return value

    @field_validator("admin_deny_status")
    @classmethod
    def _check_deny_status(cls, value: int) -> int:
        if value not in (401, 404):
            raise ValueError("401 or 404")
        return value

    @field_validator("metrics_path", "health_prefix")
    @classmethod
    def _check_path(cls, value: str, info: Any) -> str:
        example = "/health" if info.field_name == "health_prefix" else "/metrics"
        if not _PATH.fullmatch(value):
            raise ValueError(
                f"a path such as {example}: a leading /, then only A-Z a-z 0-9 . _ ~ / -"
            )
        # The prefix has sub-paths appended (/live, /ready): a trailing / would double it.
        if info.field_name == "health_prefix" and value.endswith("/"):
            raise ValueError(f"a path without a trailing /, such as {example}")
        return value

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        # The message must not quote the token: it is a secret.
        if value is not None and not _BEARER_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError(
                "a bearer token: only A-Z a-z 0-9 - . _ ~ + / (then optional trailing =), as "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))' prints"
            )
        return value

    @model_validator(mode="after")
    def _check_endpoint_paths(self) -> Settings:
        # Install serves all of them from one table: a path taken twice would fail there, far
        # from the variable that caused it. Blame the most specific variable: the metrics path
        # before the health prefix, the health prefix before the aliases and fixed pages.
        owners: dict[str, str] = {}
        for variable, paths in reversed(_path_groups(self)):
            for path in paths:
                owner = owners.setdefault(path, variable)
                if owner != variable:
                    field = _PATH_FIELDS[variable]
                    taken = _taken(path, owner, self.health_prefix)
                    raise _ConflictError(
                        field,
                        getattr(self, field),
                        f"a path fender does not serve already: {taken}",
                    )
        return self

    @field_validator("database_url", "redis_url")
    @classmethod
    def _check_url(cls, value: str, info: Any) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if not parts.scheme:
            raise ValueError(f"a URL with a scheme, like {_URL_EXAMPLES[info.field_name]}")
        if info.field_name == "redis_url" and parts.scheme not in REDIS_SCHEMES:
            raise ValueError(f"one of the schemes {', '.join(sorted(REDIS_SCHEMES))}")
        if info.field_name == "database_url" and parts.scheme in _POSTGRES_SCHEMES:
            # Without a driver SQLAlchemy picks psycopg2 (and knows no "postgres"); fender's
            # postgres extra ships psycopg 3.
            return POSTGRES_DRIVER + value[len(parts.scheme) :]
        return value

    @property
    def is_production(self) -> bool:
        """True when the production rules apply."""
        return self.env == "production"

    def require_production_ready(self) -> None:
        """Raise :class:`ConfigurationError` for the first failing production rule, if any."""
        if not self.is_production:
            return
        for finding in production_findings(self):
            if finding.status is Status.FAIL:
                secret = finding.field in _SECRET_ENV_NAMES
                value = _raw_value(self, finding.field)
                raise ConfigurationError(
                    finding.field, value, f"{finding.reason}; {finding.fix}", secret=secret
                )


def _path_groups(settings: Settings) -> list[tuple[str, tuple[str, ...]]]:
    """(variable, paths) of fender's endpoints in the order install adds them; fixed: ``""``."""
    groups: list[tuple[str, tuple[str, ...]]] = []
    if settings.metrics_enabled:
        groups.append(("FENDER_METRICS_PATH", (settings.metrics_path,)))
    prefix = settings.health_prefix
    groups.append(("FENDER_HEALTH_PREFIX", tuple(prefix + sub for sub in HEALTH_SUBPATHS)))
    groups.append(("", FIXED_PATHS))
    if settings.health_aliases:
        groups.append(("FENDER_HEALTH_ALIASES", ALIAS_PATHS))
    return groups


_PATH_FIELDS = {"FENDER_METRICS_PATH": "metrics_path", "FENDER_HEALTH_PREFIX": "health_prefix"}


def _taken(path: str, owner: str, prefix: str) -> str:
    if owner == "FENDER_HEALTH_PREFIX":
        return f"{path} is a health endpoint under FENDER_HEALTH_PREFIX={prefix}"
    if owner == "FENDER_HEALTH_ALIASES":
        return f"{path} is a health alias, served because FENDER_HEALTH_ALIASES is on"
    return f"{path} is one of fender's fixed paths ({', '.join(FIXED_PATHS)})"


def endpoint_paths(settings: Settings) -> dict[str, str]:
    """Every path fender's own endpoints take, mapped to the variable that puts it there.

    Fixed paths (``/status``...) map to ``""``. :class:`Settings` refuses a combination that
    would take one path twice, naming the variable to change.

    >>> endpoint_paths(load_settings({}, env_file=None))["/health/live"]
    'FENDER_HEALTH_PREFIX'
    """
    return {path: variable for variable, paths in _path_groups(settings) for path in paths}


REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel", "redis+cluster"})
# An endpoint path: URL-safe characters only, so that it needs no escaping anywhere.
_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
POSTGRES_DRIVER = "postgresql+psycopg"
# Heroku-style and driverless PostgreSQL schemes, rewritten to POSTGRES_DRIVER.
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
_URL_EXAMPLES = {
    "database_url": "postgresql+psycopg://user@host/db or sqlite:///app.db",
    "redis_url": "redis://localhost:6379/0",
}


@dataclasses.dataclass(frozen=True, slots=True)
class EnvVar:
    """One documented environment variable of the settings model."""

    name: str
    aliases: tuple[str, ...]
    field: str
    default: str
    description: str
    secret: bool


def _field_meta(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    if not isinstance(extra, dict):  # every field is declared through _env
        raise TypeError("settings fields must be declared with _env()")
    return extra


def _render_default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def env_vars() -> list[EnvVar]:
    """Describe every environment variable the settings model reads, in declaration order."""
    result = []
    for name, info in Settings.model_fields.items():
        meta = _field_meta(info)
        names = tuple(str(n) for n in meta["env"])
        result.append(
            EnvVar(
                name=names[0],
                aliases=names[1:],
                field=name,
                default=_render_default(info.default),
                description=info.description or "",
                secret=bool(meta["secret"]),
            )
        )
    return result


_ENV_NAME_OF_FIELD = {var.field: var.name for var in env_vars()}
_FIELD_OF_NAME = {name: var.field for var in env_vars() for name in (var.name, *var.aliases)}
_SECRET_ENV_NAMES = frozenset(var.name for var in env_vars() if var.secret)


def _allowed(field: str) -> str:
    annotation = Settings.model_fields[field].annotation
    choices = get_args(annotation)
    if choices and all(isinstance(c, str) for c in choices):
        return " | ".join(choices)
    return ""


def render_env_example() -> str:
    """Return an annotated ``.env.example``; loaded back as a ``.env`` it yields the defaults."""
    lines = [
        "# fender settings. Generated by `fender env`; every line shows the embedded default.",
        "# Empty means unset. Secrets: never commit real values.",
        "",
    ]
    for var in env_vars():
        lines.append(f"# {var.description}")
        allowed = _allowed(var.field)
        if allowed:
            lines.append(f"# One of: {allowed}.")
        if var.aliases:
            lines.append(f"# Also read from: {', '.join(var.aliases)}.")
        lines.append(f"{var.name}={var.default}")
        lines.append("")
    return "\n".join(lines)


def render_env_table() -> str:
    """Return the Markdown table of environment variables embedded in the README."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for var in env_vars():
        names = f"`{var.name}`" + "".join(f" / `{alias}`" for alias in var.aliases)
        default = f"`{var.default}`" if var.default else "(empty)"
        rows.append(f"| {names} | {default} | {var.description.replace('|', '/')} |")
    return "\n".join(rows)


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
    token = _ENVIRON.set(environ)
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise _configuration_error(exc, environ) from None
    finally:
        _ENVIRON.reset(token)


def _configuration_error(
    exc: ValidationError, environ: Mapping[str, str] | None
) -> ConfigurationError:
    """The first validation error, naming the variable that was set and masking secrets."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _ConflictError):
        field, value, expected = cause.field, cause.value, str(cause)
        loc = field
    else:
        loc = str(error["loc"][0]) if error["loc"] else "settings"
        field = _FIELD_OF_NAME.get(loc.upper(), loc)
        value = error.get("input")
        expected = str(error["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")
        allowed = _allowed(field) if field in Settings.model_fields else ""
        if allowed:
            expected = f"one of {allowed}"
    name = _name_in_use(field, environ) or _ENV_NAME_OF_FIELD.get(field, loc)
    return ConfigurationError(name, value, expected, secret=name in _SECRET_ENV_NAMES)


def _name_in_use(field: str, environ: Mapping[str, str] | None) -> str | None:
    """The variable that set ``field``: the one to name in an error (APP_ENV, not FENDER_ENV)."""
    source = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    names = [n for n, f in _FIELD_OF_NAME.items() if f == field]
    return next((n for n in names if source.get(n)), None)


def redact_url(url: str) -> str:
    """Return ``url`` with its password (or a lone token before ``@``) replaced by ``***``.

    The one function fender shows a configured URL through. The userinfo runs from ``://`` to
    the *last* ``@``: a password may hold ``/ ? # : @`` unencoded, where urllib ends it early.
    Query options named like a secret (``?password=``, ``&sentinel_password=``) are masked
    too. What either reading calls secret is hidden; an ``@`` in a path or query may hide
    more than needed, which is accepted (showing a password is not).

    >>> redact_url("postgresql://app:hunter2@db:5432/app")
    'postgresql://app:***@db:5432/app'
    >>> redact_url("redis://:pa/ss#w@rd@cache:6379/0?password=x&db=1")
    'redis://:***@cache:6379/0?password=***&db=1'
    >>> redact_url("redis://TOKEN@cache:6379")
    'redis://***@cache:6379'
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    hidden: list[tuple[int, int]] = []
    userinfo, at, _ = url[start:].rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        secret_start = start + len(user) + 1 if colon else start
        hidden.append((secret_start, start + len(userinfo)))
    hidden.extend(match.span(2) for match in _SECRET_OPTION.finditer(url, start))
    merged: list[list[int]] = []
    for low, high in sorted(hidden):
        if merged and low <= merged[-1][1]:  # overlapping or touching: one mask
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    shown, end = [], 0
    for low, high in merged:
        shown += [url[end:low], "***"]
        end = high
    shown.append(url[end:])
    return "".join(shown)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A query option whose name says it holds a secret; its value runs to the next option.
_SECRET_OPTION = re.compile(
    r"(?i)([?&;][^=&;#?]*(?:pass|pwd|secret|token|key|auth|credential)[^=&;#?]*=)([^&;#]*)"
)


def _raw_value(settings: Settings, env_name: str) -> object:
    for field, name in _ENV_NAME_OF_FIELD.items():
        if name == env_name:
            value = getattr(settings, field)
            return value.get_secret_value() if isinstance(value, SecretStr) else value
    return None


def _secret_key_finding(settings: Settings) -> Finding:
    production = settings.is_production
    missing = Status.FAIL if production else Status.WARN
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    fix = "set SECRET_KEY to python -c 'import secrets; print(secrets.token_urlsafe(48))'"
    normalised = key.strip().lower()
    if not key:
        return Finding("secret_key", missing, "SECRET_KEY is not set", fix, "SECRET_KEY")
    if normalised in PLACEHOLDER_SECRET_KEYS or normalised.startswith(PLACEHOLDER_PREFIXES):
        return Finding(
            "secret_key", missing, "SECRET_KEY is a known placeholder value", fix, "SECRET_KEY"
        )
    if len(key) < MIN_SECRET_KEY_LENGTH:
        reason = f"SECRET_KEY has {len(key)} characters, fewer than {MIN_SECRET_KEY_LENGTH}"
        return Finding("secret_key", missing, reason, fix, "SECRET_KEY")
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        reason = f"SECRET_KEY uses only {len(set(key))} distinct characters: not random"
        return Finding("secret_key", missing, reason, fix, "SECRET_KEY")
    return Finding("secret_key", Status.PASS, f"SECRET_KEY is set ({mask(key)})")


def production_findings(settings: Settings) -> list[Finding]:
    """Judge ``settings`` for production; in development, what would fail is only a warning."""
    production = settings.is_production
    bad = Status.FAIL if production else Status.WARN
    findings = [
        Finding("environment", Status.PASS, "FENDER_ENV is production")
        if production
        else Finding(
            "environment",
            Status.WARN,
            f"FENDER_ENV is {settings.env}",
            "set FENDER_ENV=production in the deployed environment",
            "FENDER_ENV",
        ),
        _secret_key_finding(settings),
        Finding(
            "debug", bad, "debug mode is on", "unset FENDER_DEBUG / FLASK_DEBUG", "FENDER_DEBUG"
        )
        if settings.debug
        else Finding("debug", Status.PASS, "debug mode is off"),
    ]
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value()
        if len(token) < MIN_SECRET_KEY_LENGTH or len(set(token)) < MIN_SECRET_KEY_DISTINCT:
            findings.append(
                Finding(
                    "admin_token",
                    bad,
                    f"FENDER_ADMIN_TOKEN is guessable ({len(token)} characters)",
                    f"use at least {MIN_SECRET_KEY_LENGTH} random characters",
                    "FENDER_ADMIN_TOKEN",
                )
            )
        else:
            findings.append(Finding("admin_token", Status.PASS, "FENDER_ADMIN_TOKEN is strong"))
    if settings.database_url.startswith("sqlite"):
        findings.append(
            Finding(
                "database",
                Status.WARN,
                "DATABASE_URL is SQLite: one file, one host",
                "set DATABASE_URL=postgresql+psycopg://... for a shared database",
                "DATABASE_URL",
            )
        )
    else:
        shown = redact_url(settings.database_url)
        findings.append(Finding("database", Status.PASS, f"DATABASE_URL is {shown}"))
    if settings.redis_url:
        shown = redact_url(settings.redis_url)
        findings.append(Finding("redis", Status.PASS, f"REDIS_URL is {shown}"))
    else:
        findings.append(
            Finding(
                "redis",
                Status.WARN,
                "REDIS_URL is empty: rate limits and cache are per process",
                "set REDIS_URL=redis://host:6379/0 to share them across instances",
                "REDIS_URL",
            )
        )
    return findings
