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

These rules judge the environment alone. The secret and debug flag the app itself uses are
judged by :mod:`fender.apps`, with the same :func:`secret_weakness`.

Testing mode (``FENDER_TESTING``, else on under pytest or for an app in its own testing mode)
keeps the production rules but turns their failures into warnings, as in development: an app's
test suite runs unchanged with fender added.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
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
    "ProductionRuleError",
    "Settings",
    "endpoint_paths",
    "env_vars",
    "load_settings",
    "production_error",
    "production_findings",
    "redact_url",
    "render_env_example",
    "render_env_table",
    "report_only",
    "reporting_only",
    "running_under_tests",
    "secret_weakness",
]

Environment = Literal["development", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

MIN_SECRET_KEY_LENGTH = 32
# A key given as raw bytes (Flask's os.urandom(24)): 16 random bytes hold the 128 bits that 32
# hex characters, the shortest text key accepted, hold.
MIN_SECRET_KEY_BYTES = 16
# Distinct characters below which a key of the right length is still a pattern, not a secret.
# Random keys come close: 32 hex characters (token_hex(16)) use fewer than 10 distinct ones
# once in 10**4 keys, fewer than 7 once in 5 * 10**9. Patterns with more characters are
# caught as repetitions, runs or words (_pattern_weakness).
MIN_SECRET_KEY_DISTINCT = 7
# Values copied from tutorials, templates and seed files; compared lower-cased and stripped.
PLACEHOLDER_SECRET_KEYS = frozenset(
    {
        # Flask's quickstart example, b'_5#y2L"F4Q8z\n\xec]/', read as latin-1.
        '_5#y2l"f4q8z\n\xec]/',
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
# The words placeholder phrases are made of ("my-super-secret-key-for-production-use"), lower
# case; see _phrase_words for how a key is read against them. Kept to that vocabulary: a word
# added here can only make a random key look more like a phrase.
PLACEHOLDER_WORDS = frozenset(
    """
    about admin and any api app application asdf asdfgh asdfghjkl at auth backend bar battery
    baz be bits by bytes change changeme changethis char chars characters complex config cookie
    correct crypto default demo dev devel develop development django do dont dummy encryption
    enough env environment ever example extra fake fastapi fill fixme flask foo for generate
    generated go goes good guess guest hard hash hello here hidden hmac horse insecure insert
    ipsum is it its jwt keep key keys know knows least length letmein local localhost long
    longer lorem make max maximum me mega min minimum must my never new no nobody not now of on
    one only or our pass passphrase passwd password placeholder please private prod production
    project put qux qwerty qwertyuiop random real really replace root salt sample secret secrets
    secure security service session sessions set settings should sign signing simple site some
    something staging staple starlette strong string super sure temp temporary test testing
    tests than that the this to todo token top type ultra unique unsafe use used user value very
    we web welcome will with world xxx you your zxcv zxcvbnm
    """.split()  # noqa: SIM905  (a paragraph of words reads and diffs better than 190 quoted)
)
# At least this share of a key's letters and digits explained by placeholder words, digit
# tokens and runs (abcd, 1234), with two words or runs, makes it a phrase. Random keys stay
# far below: over 10**6 keys each of token_urlsafe(24 and 48), token_hex(16 and 24) and
# Django's get_random_secret_key(), the most explained was 28% (a stray "me", "is", "key").
PHRASE_SHARE = 0.5
# A sequence this long (abcd, 4321, 1234) is typed, not drawn.
_MIN_RUN = 4
# Fewer words than this explain no phrase ("key" alone turns up in random keys).
_MIN_PHRASE_WORDS = 2
# Tokens that are all words make a phrase from this many; a word has this many letters (shorter
# ones are as likely in random keys).
_MIN_WORD_TOKENS = 3
_MIN_WORD_LETTERS = 3
_LONGEST_WORD = max(map(len, PLACEHOLDER_WORDS))
# Where people separate the words of a phrase; the pieces of a word: runs of lower-case letters
# (optionally Capitalized), of capitals, of digits (MySuperSecret2024 -> My Super Secret 2024).
_SEPARATORS = re.compile(r"[-_.\s:/+,|~]+")
_PIECES = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_VOWELS = frozenset("aeiouy")
# While set (fender doctor importing an app), the production rules report and never raise.
_REPORT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fender_report_only", default=False
)
# fender's own paths besides FENDER_METRICS_PATH, as fender.http.health serves them: the health
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
    testing: bool | None = _env(
        "FENDER_TESTING",
        default=None,
        description="Testing mode: the production rules only warn and rate limits are off "
        "unless a test sets FENDER_RATE_LIMIT*. Empty: on under pytest (PYTEST_VERSION) and for "
        "an app in its own testing mode (Flask's TESTING); 0: off under tests too.",
    )
    secret_key: SecretStr | None = _env(
        "SECRET_KEY",
        default=None,
        secret=True,
        description="Signing key; in production, when set or when the app signs with it, at "
        f"least {MIN_SECRET_KEY_LENGTH} random characters (python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))').",
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
        "(postgres:// and postgresql:// as the app's driver reads them; fender's own check uses "
        "psycopg 3 or psycopg2, whichever is installed).",
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
        description="Default limit per client ip and route (per client ip across all paths for "
        "apps fender knows no router of): '100/minute', '10/second; "
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

    # Whether the environment the settings were read from is a test run (PYTEST_VERSION): read
    # from the mapping given to load_settings, like every other variable, so that a test
    # judging an explicit environment judges that one and not the test runner's.
    _under_tests: bool = PrivateAttr(default=False)

    def model_post_init(self, context: Any, /) -> None:
        """Note whether the environment these settings came from is a test run."""
        super().model_post_init(context)
        environ = _ENVIRON.get()
        self._under_tests = running_under_tests(os.environ if environ is None else environ)

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
        # Not urlsplit's scheme alone: it refuses "_", which SQLAlchemy drivers have
        # (postgresql+psycopg_async, oracle+cx_oracle), and such a URL must not stop the boot.
        parts = urlsplit(value)
        scheme = parts.scheme or (m[1] if (m := _DRIVER_SCHEME.match(value)) else "")
        if not scheme:
            raise ValueError(f"a URL with a scheme, like {_URL_EXAMPLES[info.field_name]}")
        if info.field_name == "redis_url" and scheme not in REDIS_SCHEMES:
            raise ValueError(f"one of the schemes {', '.join(sorted(REDIS_SCHEMES))}")
        if info.field_name == "database_url" and scheme in _POSTGRES_SCHEMES:
            # Without a driver SQLAlchemy picks psycopg2 (and knows no "postgres"); fender's
            # postgres extra ships psycopg 3. fender.db reads the URL as written again when
            # it was the environment's, and uses whichever driver is installed.
            return POSTGRES_DRIVER + value[len(scheme) :]
        return value

    @property
    def is_production(self) -> bool:
        """True when the environment is production (see :meth:`enforces_production`)."""
        return self.env == "production"

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
        for finding in production_findings(self):
            if finding.status is Status.FAIL:
                raise production_error(self, finding)


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
_DRIVER_SCHEME = re.compile(r"([a-z][a-z0-9]*\+[a-z0-9_]+)://")
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
    """Return an annotated ``.env.example``; loaded back as a ``.env`` it yields the defaults.

    Each setting is a commented line with its default: a setting set in a ``.env`` counts as
    chosen (DATABASE_URL adds its check, a rate limit set is asked for in testing mode), so a
    copied example must choose nothing until a line is uncommented.
    """
    lines = [
        "# fender settings. Generated by `fender env`; each line shows the embedded default:",
        "# uncomment what you set. Empty means unset. Secrets: never commit real values.",
        "",
    ]
    for var in env_vars():
        lines.append(f"# {var.description}")
        allowed = _allowed(var.field)
        if allowed:
            lines.append(f"# One of: {allowed}.")
        if var.aliases:
            lines.append(f"# Also read from: {', '.join(var.aliases)}.")
        lines.append(f"# {var.name}={var.default}")
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


def running_under_tests(environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``environ`` is a pytest run: pytest (8.2 and later) sets ``PYTEST_VERSION``.

    pytest documents the variable for exactly this, and sets it for the whole session, plugins
    and conftest files included (unlike ``PYTEST_CURRENT_TEST``, set only while a test runs).
    """
    return bool(environ.get("PYTEST_VERSION"))


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


def production_error(settings: Settings, finding: Finding) -> ProductionRuleError:
    """The error for a failed finding of :func:`production_findings` (an environment rule)."""
    return ProductionRuleError(
        finding,
        _raw_value(settings, finding.field),
        secret=finding.field in _SECRET_ENV_NAMES,
        env_default="env" not in settings.model_fields_set,
    )


def secret_weakness(key: str | bytes | None) -> str:
    """Why ``key`` is not a secret to sign with, as a predicate; ``""`` when it is one.

    One judgement for the environment's ``SECRET_KEY`` and for the app's own keys. Refused:
    nothing set; a known placeholder (:data:`PLACEHOLDER_SECRET_KEYS`, or one of
    :data:`PLACEHOLDER_PREFIXES` such as Django's ``django-insecure-``); fewer than
    :data:`MIN_SECRET_KEY_LENGTH` characters; fewer than :data:`MIN_SECRET_KEY_DISTINCT`
    distinct ones; a phrase of words (``production-secret-key-32-chars-minimum``), see
    :func:`_phrase_words`. A key given as bytes that are not text (``os.urandom(24)``) needs
    :data:`MIN_SECRET_KEY_BYTES` bytes. The reason never quotes the key.

    >>> secret_weakness("my-super-secret-key-for-production-use")
    'reads as a phrase of 7 words, not a random key'
    >>> secret_weakness("kq3-VZ0x8Tb2mN7pR4sW1yH6jL9cF5gD")
    ''
    """
    if isinstance(key, bytes):
        try:
            text = key.decode()
        except UnicodeDecodeError:
            return _binary_weakness(key)
        if not text.isprintable():
            return _binary_weakness(key)
        key = text
    if not key:
        return "is not set"
    normalised = key.strip().lower()
    if normalised.startswith("django-insecure"):
        return "is a django-insecure- key, which Django generates for development only"
    if normalised in PLACEHOLDER_SECRET_KEYS or normalised.startswith(PLACEHOLDER_PREFIXES):
        return "is a known placeholder value"
    return _pattern_weakness(key)


def _pattern_weakness(key: str) -> str:
    """Why ``key``, no known placeholder, is still not random: short, repetitive, words."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"has {len(key)} characters, fewer than {MIN_SECRET_KEY_LENGTH}"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"uses only {len(set(key))} distinct characters: not random"
    period = _period(key)
    if 2 * period <= len(key):
        return f"repeats a pattern of {period} characters: not random"
    # A UUID's hex groups may happen to be digits and short words ("be"): random, not typed.
    words = 0 if _UUID.fullmatch(key.strip()) else _phrase_words(key)
    if words:
        return f"reads as a phrase of {words} words, not a random key"
    return ""


_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _binary_weakness(key: bytes) -> str:
    if key.decode("latin-1").strip().lower() in PLACEHOLDER_SECRET_KEYS:
        return "is a known placeholder value"
    if len(key) < MIN_SECRET_KEY_BYTES:
        return f"has {len(key)} bytes, fewer than {MIN_SECRET_KEY_BYTES}"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"uses only {len(set(key))} distinct bytes: not random"
    return ""


def _phrase_words(key: str) -> int:
    """How many words make ``key`` a phrase someone typed; 0 when it reads as random.

    A key is split where people separate words (``-_. :/+,|~``), then into pieces by case and
    digits (``MySuperSecret2024`` -> My, Super, Secret, 2024). Explained are: pieces made of
    :data:`PLACEHOLDER_WORDS` (``changeme`` = change + me; a piece counts when its words
    cover it, or two thirds of it with at least two words: ``nobodyguesses``), tokens of
    digits alone (``-32-``) and runs such as ``abcd`` or ``1234``. A key is a phrase when
    those explain :data:`PHRASE_SHARE` of its letters and digits with at least two words or
    runs, or when it is three or more tokens that are all words (a vowel, natural case) or
    numbers (``purple-monkey-dishwasher``): a key is generated, not chosen, however good the
    words.

    Not entropy per character: a hex key (``token_hex``) has 4 bits of alphabet per
    character and English about 4.1, so no threshold on it tells them apart; words do.
    """
    letters_and_digits = sum(char.isalnum() for char in key)
    explained = words = 0
    tokens = [token for token in _SEPARATORS.split(key) if token]
    for token in tokens:
        if token.isdigit():
            runs, covered = _runs(token)
            explained += len(token)
            words += runs
            continue
        for piece in _PIECES.findall(token):
            runs, covered = _runs(piece)
            if runs:
                explained += covered
                words += runs
            elif not piece.isdigit():
                found, covered = _segment(piece.lower())
                if covered == len(piece) or (
                    found >= _MIN_PHRASE_WORDS and 3 * covered >= 2 * len(piece)
                ):
                    explained += covered
                    words += found
    if words >= _MIN_PHRASE_WORDS and explained >= PHRASE_SHARE * letters_and_digits:
        return words
    if len(tokens) >= _MIN_WORD_TOKENS and all(_word_like(token) for token in tokens):
        return len(tokens)
    return 0


def _period(text: str) -> int:
    """The shortest ``p`` such that ``text`` repeats its first ``p`` characters (KMP prefix)."""
    border = [0] * len(text)  # border[i]: longest proper prefix of text[: i + 1] ending there
    for i in range(1, len(text)):
        length = border[i - 1]
        while length and text[i] != text[length]:
            length = border[length - 1]
        border[i] = length + (text[i] == text[length])
    return len(text) - border[-1] if text else 0


def _runs(piece: str) -> tuple[int, int]:
    """(runs, characters in them) of consecutive characters in ``piece``: abcd, 4321, 1234."""
    text = piece.lower()
    runs = covered = start = 0
    while start < len(text):
        end, step = start + 1, 0
        while end < len(text):
            delta = ord(text[end]) - ord(text[end - 1])
            if delta not in (1, -1) or step not in (0, delta):
                break
            step, end = delta, end + 1
        if end - start >= _MIN_RUN:
            runs, covered, start = runs + 1, covered + end - start, end
        else:
            start += 1
    return runs, covered


def _segment(text: str) -> tuple[int, int]:
    """(words, characters covered) of the best reading of ``text`` as placeholder words.

    Dynamic programming over prefixes: the most characters covered, then the most words;
    characters no word covers are skipped. Words of two letters and more.
    """
    best = [(0, 0)] * (len(text) + 1)  # (covered, words) of each prefix
    for end in range(1, len(text) + 1):
        choice = best[end - 1]
        for start in range(max(0, end - _LONGEST_WORD), end - 1):
            if text[start:end] in PLACEHOLDER_WORDS:
                covered, found = best[start]
                choice = max(choice, (covered + end - start, found + 1))
        best[end] = choice
    covered, found = best[-1]
    return found, covered


def _word_like(token: str) -> bool:
    """A number, or a word as people write one: 3+ letters, a vowel, one case or Capitalized."""
    if token.isdigit():
        return True
    natural = token.islower() or token.isupper() or (token[0].isupper() and token[1:].islower())
    return (
        len(token) >= _MIN_WORD_LETTERS
        and token.isalpha()
        and token.isascii()
        and natural
        and not _VOWELS.isdisjoint(token.lower())
    )


def _testing_reason(settings: Settings, *, app_testing: bool) -> str:
    """Why testing mode is on, for a finding; only called when it is."""
    if settings.testing:
        return "FENDER_TESTING is on"
    if app_testing:
        return "the app is in its testing mode (Flask's TESTING)"
    return "this is a pytest run (PYTEST_VERSION is set)"


def _secret_key_finding(settings: Settings, bad: Status, *, needed: bool | None) -> Finding:
    """The environment's SECRET_KEY: judged when set, or when the app needs it."""
    fix = (
        "set SECRET_KEY to the output of python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))'"
    )
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
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
    production = settings.is_production
    bad = Status.FAIL if settings.enforces_production(app_testing=app_testing) else Status.WARN
    if not production:
        environment = Finding(
            "environment",
            Status.WARN,
            f"FENDER_ENV is {settings.env}",
            "set FENDER_ENV=production in the deployed environment",
            "FENDER_ENV",
        )
    elif bad is Status.WARN:
        why = _testing_reason(settings, app_testing=app_testing)
        environment = Finding(
            "environment",
            Status.WARN,
            f"FENDER_ENV is production, but testing mode is on ({why}): the production rules "
            "only warn",
            "set FENDER_TESTING=0 to enforce them",
            "FENDER_TESTING",
        )
    else:
        environment = Finding("environment", Status.PASS, "FENDER_ENV is production")
    findings = [
        environment,
        _secret_key_finding(settings, bad, needed=secret_key_needed),
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
    if "database_url" not in settings.model_fields_set:
        # The embedded default is there to run with nothing installed: no database is
        # configured and fender checks none, which is no warning about SQLite.
        findings.append(
            Finding("database", Status.PASS, "no database is configured (DATABASE_URL is unset)")
        )
    elif settings.database_url.startswith("sqlite"):
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
