from __future__ import annotations

import math
import secrets
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender._envdocs import render_env_example
from fender._status import Status
from fender.errors import ConfigurationError
from fender.settings import (
    PLACEHOLDER_SECRET_KEYS,
    ProductionRuleError,
    Settings,
    env_vars,
    load_settings,
    production_findings,
    redact_url,
)

GOOD_KEY = "kq3-VZ0x8Tb2mN7pR4sW1yH6jL9cF5gD"


def load(**env: str) -> Settings:
    return load_settings(env, env_file=None)


def test_embedded_defaults_need_nothing_installed():
    settings = load()
    assert settings.env == "production"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url == ""
    assert settings.instances is None
    assert settings.memory_limit_mb is None
    assert settings.log_level == "INFO"
    assert settings.metrics_enabled is True


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"SECRET_KEY": GOOD_KEY}, "secret_key", GOOD_KEY),
        (
            {"DATABASE_URL": "postgresql+psycopg://u:p@db/app"},
            "database_url",
            "postgresql+psycopg://u:p@db/app",
        ),
        ({"REDIS_URL": "redis://cache:6379/1"}, "redis_url", "redis://cache:6379/1"),
        ({"MEMORY_LIMIT_MB": "512"}, "memory_limit_mb", 512),
        ({"LOG_LEVEL": "debug"}, "log_level", "DEBUG"),
        ({"LOG_LEVEL": "warn"}, "log_level", "WARNING"),
        ({"FLASK_ENV": "development"}, "env", "development"),
        ({"APP_ENV": "prod"}, "env", "production"),
        ({"FENDER_ENV": "Dev"}, "env", "development"),
        ({"DB_POOL_SIZE": "20"}, "db_pool_size", 20),
        ({"DB_MAX_OVERFLOW": "0"}, "db_max_overflow", 0),
        ({"DB_POOL_RECYCLE": "-1"}, "db_pool_recycle", -1),
        ({"DB_POOL_TIMEOUT": "2.5"}, "db_pool_timeout", 2.5),
        ({"METRICS_ENABLED": "false"}, "metrics_enabled", False),
        ({"METRICS_ENABLED": "0"}, "metrics_enabled", False),
        ({"NETWORK_TIMEOUT_SEC": "0.05"}, "network_timeout_sec", 0.05),
        ({"MAX_STALENESS_MS": "1500"}, "max_staleness_ms", 1500),
        ({"GIT_COMMIT": "0123abc"}, "commit", "0123abc"),
        ({"BUILD_TIME": "2024-05-01T12:00:00Z"}, "build_time", "2024-05-01T12:00:00Z"),
        ({"FLASK_DEBUG": "1"}, "debug", True),
        ({"fender_service_name": "orders"}, "service_name", "orders"),
    ],
)
def test_names_users_already_have(env, field, expected):
    value = getattr(load(**env), field)
    if field in ("secret_key", "admin_token"):
        value = value.get_secret_value()
    assert value == expected


def test_fender_name_wins_over_alias():
    assert load(FENDER_ENV="development", FLASK_ENV="production").env == "development"
    assert load(FENDER_COMMIT="abc", GIT_COMMIT="def", SOURCE_COMMIT="ghi").commit == "abc"
    assert load(GIT_COMMIT="def", SOURCE_COMMIT="ghi").commit == "def"


def test_empty_values_mean_unset():
    settings = load(MEMORY_LIMIT_MB="", SECRET_KEY="", FENDER_INSTANCES="")
    assert settings.memory_limit_mb is None
    assert settings.secret_key is None
    assert settings.instances is None


@pytest.mark.parametrize(
    ("env", "name", "fragment"),
    [
        ({"FENDER_INSTANCES": "abc"}, "FENDER_INSTANCES", "integer"),
        ({"FENDER_INSTANCES": "100001"}, "FENDER_INSTANCES", "100000"),
        ({"FENDER_INSTANCES": "0"}, "FENDER_INSTANCES", "greater than or equal to 1"),
        ({"FLASK_DEBUG": "maybe"}, "FLASK_DEBUG", "boolean"),
        ({"MEMORY_LIMIT_MB": "8"}, "MEMORY_LIMIT_MB", "16"),
        ({"MEMORY_LIMIT_MB": "512MB"}, "MEMORY_LIMIT_MB", "integer"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "DEBUG | INFO | WARNING | ERROR | CRITICAL"),
        ({"APP_ENV": "staging"}, "APP_ENV", "development | production"),
        ({"FENDER_DEBUG": "maybe"}, "FENDER_DEBUG", "boolean"),
        ({"METRICS_ENABLED": "perhaps"}, "METRICS_ENABLED", "boolean"),
        ({"NETWORK_TIMEOUT_SEC": "0"}, "NETWORK_TIMEOUT_SEC", "greater than 0"),
        ({"MAX_STALENESS_MS": "0"}, "MAX_STALENESS_MS", "greater than or equal to 1"),
        ({"DB_POOL_TIMEOUT": "-1"}, "DB_POOL_TIMEOUT", "greater than 0"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL", "redis"),
        ({"REDIS_URL": "cache:6379"}, "REDIS_URL", "scheme"),
        ({"DATABASE_URL": "just-a-name"}, "DATABASE_URL", "scheme"),
        ({"FENDER_ADMIN_DENY_STATUS": "500"}, "FENDER_ADMIN_DENY_STATUS", "401 or 404"),
        ({"FENDER_ADMIN_DENY_STATUS": "403"}, "FENDER_ADMIN_DENY_STATUS", "401 or 404"),
        ({"FENDER_ADMIN_DENY_STATUS": "none"}, "FENDER_ADMIN_DENY_STATUS", "integer"),
        ({"FENDER_HEALTH_PREFIX": "/health/"}, "FENDER_HEALTH_PREFIX", "without a trailing /"),
        ({"FENDER_HEALTH_PREFIX": "/"}, "FENDER_HEALTH_PREFIX", "without a trailing /"),
        ({"FENDER_HEALTH_PREFIX": "health"}, "FENDER_HEALTH_PREFIX", "a leading /"),
        ({"FENDER_HEALTH_PREFIX": "/health me"}, "FENDER_HEALTH_PREFIX", "A-Z a-z 0-9"),
        ({"FENDER_METRICS_PATH": "metrics"}, "FENDER_METRICS_PATH", "a leading /"),
        ({"FENDER_METRICS_PATH": "/metrics?x=1"}, "FENDER_METRICS_PATH", "such as /metrics"),
        (
            {"FENDER_ADMIN_POLICY": "sometimes"},
            "FENDER_ADMIN_POLICY",
            "never | when-authorized | always",
        ),
        ({"FENDER_HEALTH_WARN_STATUS": "199"}, "FENDER_HEALTH_WARN_STATUS", "200"),
        ({"FENDER_HEALTH_WARN_STATUS": "600"}, "FENDER_HEALTH_WARN_STATUS", "599"),
        ({"FENDER_HEALTH_WARN_STATUS": "ok"}, "FENDER_HEALTH_WARN_STATUS", "integer"),
        ({"FENDER_HEALTH_FAIL_STATUS": "0"}, "FENDER_HEALTH_FAIL_STATUS", "200"),
        ({"FENDER_HEALTH_FAIL_STATUS": "1000"}, "FENDER_HEALTH_FAIL_STATUS", "599"),
        ({"FENDER_HEALTH_FAIL_STATUS": "503.5"}, "FENDER_HEALTH_FAIL_STATUS", "integer"),
        ({"FENDER_MEMORY_TIER_MAX_MB": "1e308"}, "FENDER_MEMORY_TIER_MAX_MB", "1048576"),
        ({"FENDER_LOG_REDACT_KEYS": "ssn, card number"}, "FENDER_LOG_REDACT_KEYS", "key names"),
        ({"FENDER_LOG_FILE_MAX_MB": "0"}, "FENDER_LOG_FILE_MAX_MB", "greater than 0"),
        ({"FENDER_LOG_FILE_BACKUPS": "0"}, "FENDER_LOG_FILE_BACKUPS", "greater than or equal to 1"),
    ],
)
def test_bad_values_name_the_variable_and_what_is_expected(env, name, fragment):
    with pytest.raises(ConfigurationError) as raised:
        load(**env)
    error = raised.value
    assert error.field == name
    assert str(error).startswith(f"{name}=")
    assert fragment in error.expected


FLOAT_FIELDS = sorted(
    name for name, info in Settings.model_fields.items() if info.annotation in (float, float | None)
)


def test_there_are_float_settings_to_check():
    assert {"memory_tier_max_mb", "memory_tier_max_stale", "slow_request_ms"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("text", ["inf", "-inf", "+Infinity", "nan", "NaN"])
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_no_float_setting_accepts_inf_or_nan(field, text):
    (var,) = [v for v in env_vars() if v.field == field]
    with pytest.raises(ConfigurationError) as raised:
        load(**{var.name: text})
    assert raised.value.field == var.name
    assert "finite" in raised.value.expected


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_a_non_finite_keyword_names_the_variable_not_an_internal_field(field, value):
    (var,) = [v for v in env_vars() if v.field == field]
    with pytest.raises(ConfigurationError) as raised:
        load_settings({}, env_file=None, **{field: value})
    assert raised.value.field == var.name


@given(status=st.integers(min_value=-1000, max_value=10**4))
def test_health_statuses_are_http_statuses_200_to_599(status):
    for name, field in [
        ("FENDER_HEALTH_WARN_STATUS", "health_warn_status"),
        ("FENDER_HEALTH_FAIL_STATUS", "health_fail_status"),
    ]:
        if 200 <= status <= 599:
            assert getattr(load(**{name: str(status)}), field) == status
        else:
            with pytest.raises(ConfigurationError) as raised:
                load(**{name: str(status)})
            assert raised.value.field == name


def test_health_status_defaults_map_warn_to_200_and_fail_to_503():
    settings = load()
    assert (settings.health_warn_status, settings.health_fail_status) == (200, 503)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://app:pw@db:5432/app", "postgresql+psycopg://app:pw@db:5432/app"),
        (
            "postgresql://app:pw@db/app?sslmode=require",
            "postgresql+psycopg://app:pw@db/app?sslmode=require",
        ),
        ("POSTGRES://app@db/app", "postgresql+psycopg://app@db/app"),
        ("postgresql+psycopg://db/app", "postgresql+psycopg://db/app"),
        ("postgresql+psycopg2://db/app", "postgresql+psycopg2://db/app"),
        ("sqlite:///app.db", "sqlite:///app.db"),
        ("mysql+pymysql://db/app", "mysql+pymysql://db/app"),
    ],
)
def test_driverless_postgres_urls_use_psycopg(url, expected):
    assert load(DATABASE_URL=url).database_url == expected
    assert load_settings({}, env_file=None, database_url=url).database_url == expected


def test_secret_values_are_masked_in_errors():
    password = "hunter2-very-secret-password"
    with pytest.raises(ConfigurationError) as raised:
        load(REDIS_URL=f"http://user:{password}@cache:6379")
    assert password not in str(raised.value)
    assert "***" in str(raised.value)
    assert password not in repr(raised.value.value)


def test_secret_key_is_not_in_repr():
    settings = load(SECRET_KEY=GOOD_KEY)
    assert GOOD_KEY not in repr(settings)
    assert GOOD_KEY not in str(settings)


def production(**env: str) -> Settings:
    return load(FENDER_ENV="production", **env)


def finding(settings: Settings, check: str):
    (match,) = [f for f in production_findings(settings) if f.check == check]
    return match


def test_production_without_secret_key_only_warns_when_the_app_was_not_judged():
    # Whether the app signs with SECRET_KEY is known only from the app (fender.apps):
    # a FastAPI app that signs nothing needs none, so the environment alone cannot refuse.
    settings = production()
    settings.require_production_ready()  # nothing raised
    missing = finding(settings, "secret_key")
    assert missing.status is Status.WARN
    assert "--app" in missing.fix


def test_production_requires_secret_key_when_the_app_signs_with_it():
    settings = production()
    (missing,) = [
        f for f in production_findings(settings, secret_key_needed=True) if f.check == "secret_key"
    ]
    assert missing.status is Status.FAIL
    assert missing.reason == "SECRET_KEY is not set"
    (unneeded,) = [
        f for f in production_findings(settings, secret_key_needed=False) if f.check == "secret_key"
    ]
    assert unneeded.status is Status.PASS


def test_a_set_secret_key_is_judged_even_when_the_app_does_not_need_it():
    findings = production_findings(production(SECRET_KEY="dev"), secret_key_needed=False)
    (weak,) = [f for f in findings if f.check == "secret_key"]
    assert weak.status is Status.FAIL


def test_the_error_says_what_is_wrong_then_the_fix():
    with pytest.raises(ProductionRuleError) as raised:
        production(SECRET_KEY="short").require_production_ready()
    message = str(raised.value)
    assert message.startswith(
        "not ready for production (FENDER_ENV): SECRET_KEY has 5 characters, fewer than 32; "
        "fix: set SECRET_KEY to "
    )
    assert "expected" not in message
    assert raised.value.field == "SECRET_KEY"
    assert raised.value.expected.startswith("set SECRET_KEY to ")
    assert isinstance(raised.value, ConfigurationError)


def test_the_error_says_when_production_is_only_the_default():
    with pytest.raises(ProductionRuleError, match="the default when FENDER_ENV is not set"):
        load(SECRET_KEY="short").require_production_ready()


def test_production_rejects_short_key_without_showing_it():
    key = "short-but-secret"
    with pytest.raises(ConfigurationError) as raised:
        production(SECRET_KEY=key).require_production_ready()
    assert "fewer than 32" in str(raised.value)
    assert key not in str(raised.value)


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_SECRET_KEYS))
def test_production_rejects_known_placeholders(placeholder):
    assert finding(production(SECRET_KEY=placeholder), "secret_key").status is Status.FAIL


@pytest.mark.parametrize(
    "key",
    [
        "your-secret-key-here-please-change-it-now",
        "django-insecure-0123456789abcdefghijklmnopqrstuv",
        "CHANGEME-changeme-changeme-changeme-changeme",
        "a" * 64,
        "ab" * 40,
    ],
)
def test_production_rejects_padded_placeholders_and_patterns(key):
    assert finding(production(SECRET_KEY=key), "secret_key").status is Status.FAIL


def test_production_accepts_a_random_key():
    settings = production(SECRET_KEY=secrets.token_urlsafe(48))
    settings.require_production_ready()
    assert finding(settings, "secret_key").status is Status.PASS


def test_production_forbids_debug():
    settings = production(SECRET_KEY=GOOD_KEY, FLASK_DEBUG="true")
    with pytest.raises(ConfigurationError) as raised:
        settings.require_production_ready()
    assert raised.value.field == "FENDER_DEBUG"


def test_development_only_warns():
    settings = load(FENDER_ENV="development", FENDER_DEBUG="1")
    settings.require_production_ready()  # nothing raised
    statuses = {f.check: f.status for f in production_findings(settings)}
    assert statuses["environment"] is Status.WARN
    assert statuses["secret_key"] is Status.WARN
    assert statuses["debug"] is Status.WARN


def test_embedded_stores_are_warnings_with_a_fix():
    settings = production(SECRET_KEY=GOOD_KEY, DATABASE_URL="sqlite:///app.db")
    for check in ("database", "redis"):
        f = finding(settings, check)
        assert f.status is Status.WARN
        assert f.fix


def test_no_database_url_is_no_database_not_sqlite():
    settings = production(SECRET_KEY=GOOD_KEY)
    f = finding(settings, "database")
    assert f.status is Status.PASS
    assert f.reason == "no database is configured (DATABASE_URL is unset)"
    assert "SQLite" not in f.reason


def test_findings_never_show_passwords():
    settings = production(
        SECRET_KEY=GOOD_KEY,
        DATABASE_URL="postgresql+psycopg://app:pg-password-1@db/app",
        REDIS_URL="redis://:redis-password-2@cache:6379/0",
    )
    text = repr(production_findings(settings))
    assert "pg-password-1" not in text
    assert "redis-password-2" not in text
    assert GOOD_KEY not in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", ""),
        ("sqlite:///app.db", "sqlite:///app.db"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "postgresql://u:p%40ss@db:5432/x?sslmode=require",
            "postgresql://u:***@db:5432/x?sslmode=require",
        ),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


@given(password=st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1))
def test_redact_url_never_leaks_the_password(password):
    url = f"postgresql://user:{password}@db:5432/app"
    redacted = redact_url(url)
    assert f":{password}@" not in redacted
    assert redacted.endswith("@db:5432/app")


@given(count=st.integers(min_value=-(10**6), max_value=10**6))
def test_bounded_int_parsing_is_total(count):
    if 1 <= count <= 100000:
        assert load(FENDER_INSTANCES=str(count)).instances == count
    else:
        with pytest.raises(ConfigurationError):
            load(FENDER_INSTANCES=str(count))


@given(text=st.text(max_size=30))
def test_any_text_for_an_int_either_parses_or_names_the_variable(text):
    stripped = text.strip()
    # str.strip() also strips \x1c-\x1f, which are not whitespace to pydantic: "1\x1f" is bad.
    separators = any("\x1c" <= char <= "\x1f" for char in text)
    if (
        stripped.isascii()
        and stripped.isdigit()
        and 1 <= int(stripped) <= 100000
        and not separators
    ):
        assert load(FENDER_INSTANCES=text).instances == int(stripped)
    elif text == "":
        assert load(FENDER_INSTANCES=text).instances is None
    else:
        with pytest.raises(ConfigurationError) as raised:
            load(FENDER_INSTANCES=text)
        assert raised.value.field == "FENDER_INSTANCES"


def test_env_example_loads_back_as_defaults(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(render_env_example(), encoding="utf-8")
    from_file = load_settings({}, env_file=dotenv)
    assert from_file == load()
    # ...and chooses nothing: a copied example must not look configured (DATABASE_URL adds
    # its check; a rate limit set is one a test suite asked for).
    assert from_file.model_fields_set <= {"testing"}


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("FENDER_INSTANCES=3\nLOG_LEVEL=ERROR\n", encoding="utf-8")
    settings = load_settings({"LOG_LEVEL": "DEBUG"}, env_file=dotenv)
    assert settings.instances == 3
    assert settings.log_level == "DEBUG"


def test_keyword_overrides_win():
    assert load_settings({"FENDER_INSTANCES": "3"}, env_file=None, instances=5).instances == 5


# A valid value other than the default, for every field.
_SAMPLES = {
    "env": "development",
    "debug": "true",
    "testing": "true",
    "secret_key": GOOD_KEY,
    "service_name": "orders",
    "release": "v1.2.3",
    "log_level": "ERROR",
    "database_url": "postgresql+psycopg://db/app",
    "db_pool_size": "7",
    "db_max_overflow": "3",
    "db_pool_recycle": "60",
    "db_pool_timeout": "1.5",
    "redis_url": "redis://cache:6379/2",
    "network_timeout_sec": "0.25",
    "max_staleness_ms": "250",
    "memory_limit_mb": "512",
    "metrics_enabled": "false",
    "commit": "0123abc",
    "log_format": "console",
    "log_redact": "false",
    "log_redact_keys": "ssn,card-number",
    "log_redact_emails": "true",
    "log_anonymize_ip": "true",
    "log_file": "/var/log/app/app.log",
    "log_file_max_mb": "0.5",
    "log_file_backups": "7",
    "access_log": "false",
    "access_log_own_endpoints": "true",
    "server_access_log": "true",
    "slow_request_ms": "250",
    "metrics_path": "/internal/metrics",
    "metrics_max_series": "50",
    "rate_limit_enabled": "false",
    "rate_limit": "10/second",
    "rate_limit_algorithm": "sliding",
    "rate_limit_headers": "both",
    "rate_limit_fallback": "closed",
    "rate_limit_slack": "2",
    "rate_limit_mode": "exact",
    "rate_limit_lease_size": "30",
    "rate_limit_lease_ttl_ms": "500",
    "rate_limit_timeout_ms": "20",
    "rate_limit_allow": "10.0.0.0/8",
    "rate_limit_exempt": "/static",
    "rate_limit_paths": "/login=5/minute",
    "instances": "4",
    "trusted_proxies": "10.0.0.0/8",
    "trusted_hops": "1",
    "security_headers": "false",
    "security_profile": "api",
    "csp": "default-src 'self'",
    "csp_report_only": "true",
    "csp_report_uri": "https://reports.example.com/csp",
    "hsts_max_age": "600",
    "hsts_include_subdomains": "false",
    "hsts_preload": "true",
    "hide_versions": "true",
    "force_https": "true",
    "https_exempt": "/public",
    "allowed_hosts": "example.com",
    "cors_origins": "https://app.example.com",
    "cors_methods": "GET",
    "cors_headers": "Content-Type",
    "cors_expose_headers": "X-Request-ID",
    "cors_credentials": "true",
    "cors_max_age": "60",
    "secure_cookies": "false",
    "max_header_bytes": "8192",
    "max_header_count": "50",
    "metrics_protected": "true",
    "metrics_cache_seconds": "0",
    "security_event_threshold": "3",
    "host": "127.0.0.1",
    "port": "9000",
    "web_workers": "3",
    "gunicorn_threads": "8",
    "worker_class": "sync",
    "worker_memory_mb": "64",
    "timeout": "60",
    "graceful_timeout": "20",
    "keepalive": "65",
    "max_requests": "0",
    "max_requests_jitter": "0",
    "preload": "true",
    "memory_collect_percent": "70",
    "memory_critical_percent": "90",
    "memory_check_interval": "0",
    "slow_query_ms": "100",
    "request_head_timeout": "2",
    "body_read_timeout": "5",
    "alembic_config": "migrations/alembic.ini",
    "build_time": "2026-11-30T07:00:00Z",
    "health_prefix": "/_health",
    "health_aliases": "true",
    "health_timeout": "1",
    "health_deadline": "2",
    "health_interval": "5",
    "liveness_max_lag": "3",
    "admin_token": GOOD_KEY,
    "admin_cidrs": "10.0.0.0/8",
    "admin_policy": "always",
    "admin_deny_status": "401",
    "runtime_dir": "/run/fender",
    "drain_seconds": "3",
    "redis_on_recovery": "write_back",
    "redis_probe_interval": "0.1",
    "redis_max_connections": "5",
    "memory_tier_max_entries": "10",
    "memory_tier_max_mb": "1",
    "memory_tier_max_stale": "0",
    "celery_broker_url": "redis://broker:6379/1",
    "shutdown_hook_timeout": "2",
    "health_warn_status": "207",
    "health_fail_status": "500",
    "monitor_enabled": "false",
    "alert_min_requests": "50",
    "alert_error_rate": "0.2",
    "alert_error_rate_for": "10",
    "alert_p99_ms": "2000",
    "alert_p99_for": "30",
    "alert_memory_for": "5",
    "alert_breaker_open_for": "300",
    "alert_health_failures": "5",
}


def test_every_documented_name_is_read():
    assert set(_SAMPLES) == {var.field for var in env_vars()}
    default = load()
    for var in env_vars():
        for name in (var.name, *var.aliases):
            settings = load(**{name: _SAMPLES[var.field]})
            assert getattr(settings, var.field) != getattr(default, var.field), name


def test_settings_are_immutable():
    settings = load()
    with pytest.raises(Exception, match="frozen"):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("token", "status"),
    [("short-token", Status.FAIL), ("a" * 40, Status.FAIL), (GOOD_KEY, Status.PASS)],
)
def test_production_admin_token_must_be_strong(token, status):
    settings = production(SECRET_KEY=GOOD_KEY, FENDER_ADMIN_TOKEN=token)
    assert finding(settings, "admin_token").status is status
    if status is Status.FAIL:
        with pytest.raises(ConfigurationError) as raised:
            settings.require_production_ready()
        assert raised.value.field == "FENDER_ADMIN_TOKEN"
        assert token not in str(raised.value)
