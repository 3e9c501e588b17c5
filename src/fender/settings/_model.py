"""The settings model: every field fender reads, its environment names, default and checks.

The names are the ones services already use (``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL``,
``LOG_LEVEL``...); everything fender adds is ``FENDER_*``. Each default is declared once, here:
the rate limiter, the README's table and ``fender env`` read it from the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from fender._status import Finding, Status
from fender.settings import _checks
from fender.settings._environ import given_environ, running_under_tests, source_environ
from fender.settings._fields import ConflictError, EnvVar, describe, env_field
from fender.settings._monitor import MonitorFields
from fender.settings._paths import PATH_FIELDS, path_groups, taken
from fender.settings._production import (
    ProductionRuleError,
    admin_token_finding,
    debug_finding,
    reporting_only,
    secret_key_finding,
)
from fender.settings._ratelimit_lease import LeaseFields
from fender.settings._secrets import MIN_SECRET_KEY_LENGTH
from fender.settings._security import SecurityFields
from fender.settings._serving import ServingFields

__all__ = [
    "Settings",
    "endpoint_paths",
    "env_name",
    "env_vars",
    "field_default",
    "production_error",
    "rule_findings",
    "secret_env_names",
]

Environment = Literal["development", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# The HTTP statuses a health answer may be mapped to (FENDER_HEALTH_*_STATUS).
MIN_HTTP_STATUS = 200
MAX_HTTP_STATUS = 599
# 1 TiB of cached values per worker: already absurd, and it keeps MiB x 2**20 a finite float.
MAX_MEMORY_TIER_MB = 1024 * 1024
MAX_LOG_FILE_MB = 1024 * 1024  # 1 TiB: any real limit, and MiB x 2**20 stays an exact int


class Settings(SecurityFields, ServingFields, MonitorFields, LeaseFields, BaseSettings):
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

    env: Environment = env_field(
        "FENDER_ENV",
        "APP_ENV",
        "FLASK_ENV",
        default="production",
        description="development or production; production turns on the production rules.",
    )
    debug: bool = env_field(
        "FENDER_DEBUG",
        "FLASK_DEBUG",
        default=False,
        description="Debug mode; must be off in production.",
    )
    testing: bool | None = env_field(
        "FENDER_TESTING",
        default=None,
        description="Testing mode: the production rules only warn and rate limits are off "
        "unless a test sets FENDER_RATE_LIMIT*. Empty: on under pytest (PYTEST_VERSION) and for "
        "an app in its own testing mode (Flask's TESTING); 0: off under tests too.",
    )
    secret_key: SecretStr | None = env_field(
        "SECRET_KEY",
        default=None,
        secret=True,
        description="Signing key; in production, when set or when the app signs with it, at "
        f"least {MIN_SECRET_KEY_LENGTH} random characters (python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))').",
    )
    service_name: str = env_field(
        "FENDER_SERVICE_NAME",
        default="app",
        min_length=1,
        description="Service name shown in logs, metrics and /health/version.",
    )
    release: str = env_field(
        "FENDER_RELEASE",
        default="",
        description="Release id (image tag, git describe) shown in /health/version.",
    )
    commit: str = env_field(
        "FENDER_COMMIT",
        "GIT_COMMIT",
        "SOURCE_COMMIT",
        default="",
        description="Commit the service was built from (app_build_info, /health/version).",
    )
    log_level: LogLevel = env_field(
        "LOG_LEVEL",
        default="INFO",
        description="Lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    )
    log_format: Literal["auto", "json", "console"] = env_field(
        "FENDER_LOG_FORMAT",
        default="auto",
        description="auto: JSON lines in production or when stdout is not a terminal, colored "
        "console lines otherwise.",
    )
    log_redact: bool = env_field(
        "FENDER_LOG_REDACT",
        default=True,
        description="Mask secrets in every log line: Authorization and Cookie headers, values "
        "of keys named like password, secret, token, api_key, session; passwords in URLs.",
    )
    log_redact_keys: str = env_field(
        "FENDER_LOG_REDACT_KEYS",
        default="",
        description="Comma-separated extra key names whose values are masked (a key that has "
        "one as a part, between _ - or ., too), e.g. 'ssn,card_number'.",
    )
    log_redact_emails: bool = env_field(
        "FENDER_LOG_REDACT_EMAILS",
        default=False,
        description="Also mask e-mail addresses in log lines (with FENDER_LOG_REDACT).",
    )
    log_anonymize_ip: bool = env_field(
        "FENDER_LOG_ANONYMIZE_IP",
        default=False,
        description="Log IP addresses (the access event's client, addresses in text) with the "
        "last IPv4 octet and the last 80 IPv6 bits zeroed (with FENDER_LOG_REDACT).",
    )
    log_file: str = env_field(
        "FENDER_LOG_FILE",
        default="",
        description="Also write the JSON log lines to this file, rotated by size; several "
        "workers may share it. Empty: stdout only.",
    )
    log_file_max_mb: float = env_field(
        "FENDER_LOG_FILE_MAX_MB",
        default=10.0,
        gt=0,
        le=MAX_LOG_FILE_MB,
        description="MiB past which FENDER_LOG_FILE is rotated (renamed to <file>.1).",
    )
    log_file_backups: int = env_field(
        "FENDER_LOG_FILE_BACKUPS",
        default=3,
        ge=1,
        le=100,
        description="Rotated log files kept (<file>.1 ... <file>.N); the oldest is deleted.",
    )
    access_log: bool = env_field(
        "FENDER_ACCESS_LOG",
        default=True,
        description="One JSON access event per request (request id, route, status, duration).",
    )
    access_log_own_endpoints: bool = env_field(
        "FENDER_ACCESS_LOG_OWN_ENDPOINTS",
        default=False,
        description="Also log requests to fender's own endpoints (/metrics, /health...).",
    )
    server_access_log: bool = env_field(
        "FENDER_SERVER_ACCESS_LOG",
        default=False,
        description="Keep gunicorn's and uvicorn's own access lines (fender's replace them).",
    )
    slow_request_ms: float = env_field(
        "FENDER_SLOW_REQUEST_MS",
        default=1000.0,
        gt=0,
        description="A request slower than this logs a slow_request warning and is counted.",
    )
    database_url: str = env_field(
        "DATABASE_URL",
        default="sqlite:///fender.db",
        min_length=1,
        secret=True,
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... for real "
        "(postgres:// and postgresql:// as the app's driver reads them; fender's own check uses "
        "psycopg 3 or psycopg2, whichever is installed).",
    )
    db_pool_size: int = env_field(
        "DB_POOL_SIZE", default=10, ge=1, le=1000, description="Connections kept open per worker."
    )
    db_max_overflow: int = env_field(
        "DB_MAX_OVERFLOW",
        default=20,
        ge=0,
        le=1000,
        description="Extra connections a worker may open under load.",
    )
    db_pool_recycle: int = env_field(
        "DB_POOL_RECYCLE",
        default=3600,
        ge=-1,
        description="Seconds after which a connection is replaced (-1: never).",
    )
    db_pool_timeout: float = env_field(
        "DB_POOL_TIMEOUT",
        default=30.0,
        gt=0,
        description="Seconds to wait for a free connection before failing.",
    )
    redis_url: str = env_field(
        "REDIS_URL",
        default="",
        secret=True,
        description="redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// URL; "
        "empty means the in-memory tier.",
    )
    celery_broker_url: str = env_field(
        "CELERY_BROKER_URL",
        default="",
        secret=True,
        description="Celery broker; when set and celery is installed, a health check pings the "
        "broker and the workers.",
    )
    network_timeout_sec: float = env_field(
        "NETWORK_TIMEOUT_SEC",
        default=0.5,
        gt=0,
        le=60,
        description="Connect and read timeout for network dependencies, in seconds.",
    )
    max_staleness_ms: int = env_field(
        "MAX_STALENESS_MS",
        default=5000,
        ge=1,
        description="Replicated reads older than this many milliseconds are marked stale (the "
        "reference key-value store's AP mode).",
    )
    memory_limit_mb: int | None = env_field(
        "MEMORY_LIMIT_MB",
        default=None,
        ge=16,
        description="Memory limit of the container in MiB; empty: the cgroup's limit, else the "
        "host's total memory.",
    )
    metrics_enabled: bool = env_field(
        "METRICS_ENABLED", default=True, description="Serve Prometheus metrics on /metrics."
    )
    metrics_path: str = env_field(
        "FENDER_METRICS_PATH",
        default="/metrics",
        description="Path of the Prometheus endpoint.",
    )
    metrics_max_series: int = env_field(
        "FENDER_METRICS_MAX_SERIES",
        default=500,
        ge=10,
        description="Cap on label sets per HTTP metric; past it new routes count as _overflow.",
    )
    build_time: str = env_field(
        "FENDER_BUILD_TIME",
        "BUILD_TIME",
        default="",
        description="When the image was built (ISO 8601), shown in /health/version.",
    )
    health_prefix: str = env_field(
        "FENDER_HEALTH_PREFIX",
        default="/health",
        description="Path prefix of the health endpoints (/health, /health/live, ...).",
    )
    health_aliases: bool = env_field(
        "FENDER_HEALTH_ALIASES",
        default=False,
        description="Also serve /healthz, /livez and /readyz.",
    )
    health_timeout: float = env_field(
        "FENDER_HEALTH_TIMEOUT",
        default=2.0,
        gt=0,
        le=60,
        description="Default timeout of one health check, in seconds.",
    )
    health_deadline: float = env_field(
        "FENDER_HEALTH_DEADLINE",
        default=3.0,
        gt=0,
        le=120,
        description="Deadline of a whole health run, in seconds.",
    )
    health_interval: float = env_field(
        "FENDER_HEALTH_INTERVAL",
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds between background refreshes of the health snapshot.",
    )
    health_warn_status: int = env_field(
        "FENDER_HEALTH_WARN_STATUS",
        default=200,
        ge=MIN_HTTP_STATUS,
        le=MAX_HTTP_STATUS,
        description="HTTP status of a health answer whose status is warn (degraded): 200-599.",
    )
    health_fail_status: int = env_field(
        "FENDER_HEALTH_FAIL_STATUS",
        default=503,
        ge=MIN_HTTP_STATUS,
        le=MAX_HTTP_STATUS,
        description="HTTP status of a health answer whose status is fail: 200-599.",
    )
    liveness_max_lag: float = env_field(
        "FENDER_LIVENESS_MAX_LAG",
        default=10.0,
        gt=0,
        description="Event-loop stall, in seconds, past which /health/live answers 503.",
    )
    admin_token: SecretStr | None = env_field(
        "FENDER_ADMIN_TOKEN",
        default=None,
        secret=True,
        description="Bearer token for /health/detailed, /status, /circuit-breaker and "
        "POST /health/drain.",
    )
    admin_cidrs: str = env_field(
        "FENDER_ADMIN_CIDRS",
        default="",
        description="Comma-separated CIDRs that may read protected endpoints without a token; "
        "empty in development: loopback (127.0.0.0/8, ::1).",
    )
    admin_policy: Literal["never", "when-authorized", "always"] = env_field(
        "FENDER_ADMIN_POLICY",
        default="when-authorized",
        description="Who sees the protected endpoints: never, when-authorized (token or CIDR), "
        "always.",
    )
    admin_deny_status: int = env_field(
        "FENDER_ADMIN_DENY_STATUS",
        default=404,
        description="Answer to an unauthorized request for a protected endpoint: 404 or 401.",
    )
    shutdown_hook_timeout: float = env_field(
        "FENDER_SHUTDOWN_HOOK_TIMEOUT",
        default=5.0,
        gt=0,
        le=300,
        description="Seconds each shutdown hook may take (closing pools, flushing) before the "
        "next one runs.",
    )
    runtime_dir: str = env_field(
        "FENDER_RUNTIME_DIR",
        default="/tmp/fender",  # noqa: S108  (per container; FENDER_RUNTIME_DIR moves it)
        min_length=1,
        description="Directory shared by the workers of one server (the drain flag); the default "
        "stands for /tmp/fender-<uid>/<service name>. Created 0700; refused if not this user's "
        "alone.",
    )
    drain_seconds: float = env_field(
        "FENDER_DRAIN_SECONDS",
        default=10.0,
        ge=0,
        le=3600,
        description="How long `fender drain` waits after turning readiness off, for the load "
        "balancer to notice.",
    )
    redis_on_recovery: Literal["invalidate", "write_back"] = env_field(
        "FENDER_REDIS_ON_RECOVERY",
        default="invalidate",
        description="Keys written to the memory tier during a Redis outage: deleted in Redis "
        "(invalidate) or written back (write_back) when it returns.",
    )
    redis_probe_interval: float = env_field(
        "FENDER_REDIS_PROBE_INTERVAL",
        default=0.5,
        gt=0,
        le=60,
        description="Seconds between background pings while Redis is considered down.",
    )
    redis_max_connections: int = env_field(
        "FENDER_REDIS_MAX_CONNECTIONS",
        default=50,
        ge=1,
        le=10000,
        description="Redis connection pool size per worker.",
    )
    memory_tier_max_entries: int = env_field(
        "FENDER_MEMORY_TIER_MAX_ENTRIES",
        default=10000,
        ge=1,
        description="Entries the in-memory tier keeps (LRU beyond).",
    )
    memory_tier_max_mb: float = env_field(
        "FENDER_MEMORY_TIER_MAX_MB",
        default=32.0,
        gt=0,
        le=MAX_MEMORY_TIER_MB,
        description="MiB of values the in-memory tier keeps (LRU beyond).",
    )
    memory_tier_max_stale: float = env_field(
        "FENDER_MEMORY_TIER_MAX_STALE",
        default=300.0,
        ge=0,
        description="Seconds past its TTL a value may still be served, marked stale, while "
        "Redis is down.",
    )
    rate_limit_enabled: bool = env_field(
        "FENDER_RATE_LIMIT_ENABLED",
        default=True,
        description="Rate-limit requests (fender's own endpoints are exempt).",
    )
    rate_limit: str = env_field(
        "FENDER_RATE_LIMIT",
        default="100/minute burst 200",
        min_length=1,
        description="Default limit per client ip and route (per client ip across all paths for "
        "apps fender knows no router of): '100/minute', '10/second; "
        "1000/hour', '100/minute burst 200'.",
    )
    rate_limit_algorithm: Literal["gcra", "sliding"] = env_field(
        "FENDER_RATE_LIMIT_ALGORITHM",
        default="gcra",
        description="gcra (rate plus burst) or sliding (sliding-window counter).",
    )
    rate_limit_headers: Literal["ietf", "legacy", "both", "none"] = env_field(
        "FENDER_RATE_LIMIT_HEADERS",
        default="ietf",
        description="RateLimit / RateLimit-Policy (ietf), X-RateLimit-* (legacy), both, none.",
    )
    rate_limit_fallback: Literal["local", "open", "closed"] = env_field(
        "FENDER_RATE_LIMIT_FALLBACK",
        default="local",
        description="When Redis does not answer: limit in memory (local), allow (open) or "
        "reject (closed).",
    )
    rate_limit_slack: float = env_field(
        "FENDER_RATE_LIMIT_SLACK",
        default=1.5,
        ge=1.0,
        le=10.0,
        description="On the memory fallback each instance allows ceil(limit / instances) x slack.",
    )
    rate_limit_timeout_ms: float = env_field(
        "FENDER_RATE_LIMIT_TIMEOUT_MS",
        default=50.0,
        gt=0,
        le=5000,
        description="Longest wait for Redis on a rate-limit decision before the fallback decides.",
    )
    rate_limit_allow: str = env_field(
        "FENDER_RATE_LIMIT_ALLOW",
        default="",
        description="Comma-separated ips or CIDRs never rate-limited.",
    )
    rate_limit_exempt: str = env_field(
        "FENDER_RATE_LIMIT_EXEMPT",
        default="",
        description="Comma-separated path prefixes never rate-limited (fender's own endpoints "
        "always are).",
    )
    rate_limit_paths: str = env_field(
        "FENDER_RATE_LIMIT_PATHS",
        default="",
        description="Per-route limits: 'route=limit' pairs separated by '|', e.g. "
        "'/login=5/minute|/search=30/minute'.",
    )
    instances: int | None = env_field(
        "FENDER_INSTANCES",
        default=None,
        ge=1,
        le=100000,
        description="Number of service instances sharing the limits; empty: counted by a "
        "heartbeat in Redis.",
    )
    trusted_proxies: str = env_field(
        "FENDER_TRUSTED_PROXIES",
        default="",
        description="Comma-separated CIDRs of proxies whose X-Forwarded-For / Forwarded is "
        "believed; empty: the socket peer is the client.",
    )
    trusted_hops: int | None = env_field(
        "FENDER_TRUSTED_HOPS",
        default=None,
        ge=0,
        le=32,
        description="Instead of FENDER_TRUSTED_PROXIES: trust exactly this many proxy hops.",
    )

    # Whether the environment the settings were read from is a test run (PYTEST_VERSION): read
    # from the mapping given to load_settings, like every other variable, so that a test
    # judging an explicit environment judges that one and not the test runner's.
    _under_tests: bool = PrivateAttr(default=False)

    def model_post_init(self, context: Any, /) -> None:
        """Note whether the environment these settings came from is a test run."""
        super().model_post_init(context)
        self._under_tests = running_under_tests(source_environ(given_environ()))

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
        environ = given_environ()
        if environ is not None and isinstance(env_settings, EnvSettingsSource):
            # Same normalisation as for os.environ: names case-insensitive, empty means unset.
            env_settings.env_vars = {k.lower(): v for k, v in environ.items() if v != ""}
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("env", mode="before")
    @classmethod
    def _normalise_env(cls, value: object) -> object:
        return _checks.normalise_env(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _normalise_level(cls, value: object) -> object:
        return _checks.normalise_level(value)

    @field_validator("log_redact_keys")
    @classmethod
    def _check_redact_keys(cls, value: str) -> str:
        _checks.key_names(value)
        return value

    @field_validator("admin_deny_status")
    @classmethod
    def _check_deny_status(cls, value: int) -> int:
        return _checks.check_deny_status(value)

    @field_validator("metrics_path", "health_prefix")
    @classmethod
    def _check_path(cls, value: str, info: Any) -> str:
        return _checks.check_path(value, info.field_name)

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _checks.check_bearer_token(value.get_secret_value())
        return value

    @field_validator("database_url", "redis_url")
    @classmethod
    def _check_url(cls, value: str, info: Any) -> str:
        return _checks.check_url(value, info.field_name)

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
                    field = PATH_FIELDS[variable]
                    raise ConflictError(
                        field,
                        getattr(self, field),
                        "a path fender does not serve already: "
                        + taken(path, owner, self.health_prefix),
                    )
        return self

    @property
    def is_production(self) -> bool:
        """True when the environment is production (see :meth:`enforces_production`)."""
        return self.env == "production"

    @property
    def versions_hidden(self) -> bool:
        """FENDER_HIDE_VERSIONS; when unset, True in production."""
        return self.is_production if self.hide_versions is None else self.hide_versions

    def testing_mode(self, app_testing: bool = False) -> bool:  # noqa: FBT001, FBT002  (adapters pass app.testing as is)
        """True when the production rules only warn, as in development.

        ``FENDER_TESTING`` decides when set; otherwise testing mode is on when the app is in
        its own testing mode (``app_testing``: Flask's ``app.testing``, unless FENDER_ENV was
        set) or the environment the settings were read from is a pytest run
        (:func:`running_under_tests`).
        """
        if self.testing is not None:
            return self.testing
        # A Flask app left with TESTING on while FENDER_ENV=production is set on purpose is a
        # deployment, not a test: there the framework's flag does not relax anything.
        return (app_testing and "env" not in self.model_fields_set) or self._under_tests

    def enforces_production(self, *, app_testing: bool = False) -> bool:
        """True when a broken production rule is a failure: production, not in testing mode."""
        return self.is_production and not self.testing_mode(app_testing=app_testing)

    def require_production_ready(self) -> None:
        """Raise :class:`ProductionRuleError` for the first failing production rule, if any.

        Judges the environment only; :func:`fender.apps.require_app_ready` also judges
        the secret and debug flag of the app. Inside :func:`report_only` nothing is raised.
        """
        if not self.enforces_production() or reporting_only():
            return
        for finding in rule_findings(self, Status.FAIL, secret_key_needed=None):
            if finding.status is Status.FAIL:
                raise production_error(self, finding)


def _path_groups(settings: Settings) -> list[tuple[str, tuple[str, ...]]]:
    return path_groups(
        metrics_path=settings.metrics_path if settings.metrics_enabled else None,
        health_prefix=settings.health_prefix,
        health_aliases=settings.health_aliases,
    )


def endpoint_paths(settings: Settings) -> dict[str, str]:
    """Every path fender's own endpoints take, mapped to the variable that puts it there.

    Fixed paths (``/status``...) map to ``""``. :class:`Settings` refuses a combination that
    would take one path twice, naming the variable to change.

    >>> from fender.settings import load_settings
    >>> endpoint_paths(load_settings({}, env_file=None))["/health/live"]
    'FENDER_HEALTH_PREFIX'
    """
    return {path: variable for variable, paths in _path_groups(settings) for path in paths}


def env_vars() -> list[EnvVar]:
    """Describe every environment variable the settings model reads, in declaration order."""
    return list(_ENV_VARS)


# The mixins' fields come first in the model (pydantic puts a base's fields first);
# documented after the main ones, where a reader of the table looks for them.
_MIXIN_FIELDS = {
    **ServingFields.model_fields,
    **MonitorFields.model_fields,
    **SecurityFields.model_fields,
}
_ENV_VARS = tuple(
    describe(
        {
            **{
                k: v
                for k, v in Settings.model_fields.items()
                if k not in SecurityFields.model_fields
            },
            **SecurityFields.model_fields,
        }
    )
)
_VAR_OF_FIELD = {var.field: var for var in _ENV_VARS}


def env_name(field: str) -> str:
    """The environment variable of the settings ``field`` (the first of its names).

    >>> env_name("rate_limit")
    'FENDER_RATE_LIMIT'
    """
    return _VAR_OF_FIELD[field].name


def field_default(field: str) -> Any:
    """The embedded default of the settings ``field``, as declared (not rendered as text).

    >>> field_default("rate_limit_slack")
    1.5
    """
    return Settings.model_fields[field].default


def secret_env_names() -> frozenset[str]:
    """The variables whose values are secrets (shown masked)."""
    return _SECRET_ENV_NAMES


_SECRET_ENV_NAMES = frozenset(var.name for var in _ENV_VARS if var.secret)


def rule_findings(
    settings: Settings, bad: Status, *, secret_key_needed: bool | None
) -> list[Finding]:
    """The production rules that can fail, over ``settings``: SECRET_KEY, debug, admin token.

    ``bad`` is the status of a broken rule; see :func:`fender.settings.production_findings`
    for ``secret_key_needed``.
    """
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    findings = [
        secret_key_finding(key, bad, needed=secret_key_needed),
        debug_finding(settings.debug, bad),
    ]
    if settings.admin_token is not None:
        findings.append(admin_token_finding(settings.admin_token.get_secret_value(), bad))
    return findings


def production_error(settings: Settings, finding: Finding) -> ProductionRuleError:
    """The error for a failed finding of :func:`production_findings` (an environment rule)."""
    return ProductionRuleError(
        finding,
        _raw_value(settings, finding.field),
        secret=finding.field in _SECRET_ENV_NAMES,
        env_default="env" not in settings.model_fields_set,
    )


def _raw_value(settings: Settings, name: str) -> object:
    for var in _ENV_VARS:
        if var.name == name:
            value = getattr(settings, var.field)
            return value.get_secret_value() if isinstance(value, SecretStr) else value
    return None
