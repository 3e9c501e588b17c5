"""Secrets in settings: URLs shown redacted, the admin token usable, fender's paths distinct."""

from __future__ import annotations

import secrets
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fender.app import ASGI, Runtime
from fender.errors import ConfigurationError
from fender.settings import (
    ALIAS_PATHS,
    FIXED_PATHS,
    HEALTH_SUBPATHS,
    endpoint_paths,
    load_settings,
    production_findings,
    redact_url,
)

SECRET = "S3cr3tPa55"
# Every character a password may hold, unencoded, surrogates aside (no text can carry them).
ANY_CHARACTER = st.characters(blacklist_categories=("Cs",))
PASSWORDS = st.one_of(
    st.text(alphabet=string.printable, min_size=1),
    st.text(alphabet=ANY_CHARACTER, min_size=1),
)
SCHEMES = st.sampled_from(
    ["redis", "rediss", "redis+sentinel", "postgresql", "postgresql+psycopg", "amqp"]
)
USERS = st.text(alphabet=string.ascii_letters + string.digits + "-._~%", max_size=8)
HOSTS = st.sampled_from(["db", "cache:6379", "10.0.0.7:5432", "[::1]:6379", "h1,h2:26380"])
TAILS = st.sampled_from(["", "/", "/0", "/app", "/app?sslmode=require", "/m/2?ssl=true"])


def load(**env: str):
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


# --- redact_url ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:hunter/2@db/app", "postgresql://app:***@db/app"),
        (f"redis://:{SECRET}#x@host:6379/0", "redis://:***@host:6379/0"),
        (f"redis://:pa/{SECRET}@host/0", "redis://:***@host/0"),
        (f"redis://:{SECRET}?@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"redis://u:{SECRET}@h@st:6379", "redis://u:***@st:6379"),
        (f"redis://{SECRET}@host", "redis://***@host"),
        (f"redis+sentinel://:{SECRET}@h1:26379,h2:x/m", "redis+sentinel://:***@h1:26379,h2:x/m"),
        (f"redis://h/0?password={SECRET}&db=1", "redis://h/0?password=***&db=1"),
        (
            f"redis+sentinel://h/m?sentinel_password={SECRET}",
            "redis+sentinel://h/m?sentinel_password=***",
        ),
        # Read either way, the secret runs to the end: all of it is hidden.
        (f"redis://:pw@h/0?x=1&token={SECRET}@z", "redis://:***"),
        (f"user:{SECRET}@db/app", "user:***@db/app"),
        (f"u:a://{SECRET}@h", "u:***@h"),
        ("redis://u:@h", "redis://u:***@h"),
        ("sqlite:///var/app.db", "sqlite:///var/app.db"),
        ("redis://cache:6379/0?socket_timeout=1", "redis://cache:6379/0?socket_timeout=1"),
    ],
)
def test_redact_url_hides_malformed_passwords(url, expected):
    redacted = redact_url(url)
    assert redacted == expected
    assert SECRET not in redacted


@given(scheme=SCHEMES, user=USERS, password=PASSWORDS, host=HOSTS, tail=TAILS)
def test_redact_url_keeps_everything_but_the_password(scheme, user, password, host, tail):
    # An "=" in the password may read as a secret query option, which hides more: see below.
    assume("=" not in password)
    url = f"{scheme}://{user}:{password}@{host}{tail}"
    assert redact_url(url) == f"{scheme}://{user}:***@{host}{tail}"


@given(scheme=SCHEMES, user=USERS, password=PASSWORDS, host=HOSTS, tail=TAILS)
def test_redact_url_never_shows_any_password(scheme, user, password, host, tail):
    shown = f"{scheme}://{user}:***@{host}{tail}"
    assume(password not in shown)  # else it is in the output only as the host, the user...
    url = f"{scheme}://{user}:{password}@{host}{tail}"
    assert password not in redact_url(url)


@given(scheme=SCHEMES, token=PASSWORDS, host=HOSTS, tail=TAILS)
def test_redact_url_hides_a_lone_token(scheme, token, host, tail):
    assume(not set(token) & set("=:"))  # with a ":" it is a user and a password
    assert redact_url(f"{scheme}://{token}@{host}{tail}") == f"{scheme}://***@{host}{tail}"


@given(password=PASSWORDS, tail=st.sampled_from(["", "&db=1", "#frag"]))
def test_redact_url_hides_secret_query_options(password, tail):
    # "&;#" end the value; an "@" may end a userinfo, which hides more (accepted).
    assume(not set(password) & set("&;#@"))
    url = f"redis://cache:6379/0?password={password}{tail}"
    assert redact_url(url) == f"redis://cache:6379/0?password=***{tail}"


@pytest.mark.parametrize(
    "password",
    ["hunter/2", f"{SECRET}#x", f"{SECRET}?", f"a@{SECRET}", f"{SECRET}:x", f"p {SECRET}"],
)
def test_doctor_findings_never_show_a_password(password):
    settings = load(
        DATABASE_URL=f"postgresql://app:{password}@db/app",
        REDIS_URL=f"redis://:{password}@cache:6379/0",
    )
    text = repr(production_findings(settings))
    assert password not in text
    assert "DATABASE_URL is postgresql+psycopg://app:***@db/app" in text
    assert "REDIS_URL is redis://:***@cache:6379/0" in text


def test_doctor_findings_hide_a_token_only_url():
    text = repr(production_findings(load(REDIS_URL=f"redis://{SECRET}@cache:6379/0")))
    assert SECRET not in text
    assert "REDIS_URL is redis://***@cache:6379/0" in text


# --- FENDER_ADMIN_TOKEN --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        secrets.token_urlsafe(32),
        "dGhpcyBpcyBhIGJhc2U2NCB0b2tlbiB3aXRoIHBhZGRpbmc+/==",
        "a.b~c_d-e+f/g=",
    ],
)
def test_a_bearer_token_is_accepted(token):
    assert load(FENDER_ADMIN_TOKEN=token).admin_token.get_secret_value() == token


@pytest.mark.parametrize(
    "token",
    [
        "tökén-with-ünïcödé-and-enough-length-123456",
        "   ",
        " leading-space-token-of-enough-length-1234",
        "token with spaces in the middle of it 12345",
        'quoted"token"that-is-long-enough-0123456789',
        "a=b-padding-in-the-middle-is-not-b64token-1",
        "emoji-\U0001f511-token-long-enough-0123456789",
    ],
)
def test_a_token_no_client_could_send_is_refused(token):
    with pytest.raises(ConfigurationError) as raised:
        load(FENDER_ADMIN_TOKEN=token)
    assert raised.value.field == "FENDER_ADMIN_TOKEN"
    assert token not in str(raised.value)
    assert raised.value.value == f"***({len(token)} chars)"
    assert "bearer token" in raised.value.expected


def test_a_bad_token_given_to_install_is_refused_too():
    with pytest.raises(ConfigurationError, match="FENDER_ADMIN_TOKEN"):
        load_settings({}, env_file=None, env="development", admin_token="pässwörd-" * 4)


def sendable(token: str) -> bool:
    """RFC 6750 b64token: ASCII letters, digits, - . _ ~ + /, then only = (padding)."""
    body = token.rstrip("=")
    return bool(body) and all(c.isascii() and (c.isalnum() or c in "-._~+/") for c in body)


@given(token=st.text(alphabet=ANY_CHARACTER, min_size=1, max_size=40))
def test_a_token_is_accepted_exactly_when_a_client_can_send_it(token):
    if sendable(token):
        assert load(FENDER_ADMIN_TOKEN=token).admin_token.get_secret_value() == token
        # The server decodes the header as latin-1: an ASCII token arrives as it was sent.
        assert token.encode("utf-8").decode("latin-1") == token
    else:
        with pytest.raises(ConfigurationError) as raised:
            load(FENDER_ADMIN_TOKEN=token)
        assert raised.value.field == "FENDER_ADMIN_TOKEN"


# --- fender's own paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "blamed", "mentioned"),
    [
        ({"FENDER_METRICS_PATH": "/health"}, "FENDER_METRICS_PATH", "FENDER_HEALTH_PREFIX"),
        ({"FENDER_METRICS_PATH": "/health/live"}, "FENDER_METRICS_PATH", "FENDER_HEALTH_PREFIX"),
        ({"FENDER_METRICS_PATH": "/health/drain"}, "FENDER_METRICS_PATH", "FENDER_HEALTH_PREFIX"),
        ({"FENDER_METRICS_PATH": "/status/style.css"}, "FENDER_METRICS_PATH", "fixed paths"),
        ({"FENDER_METRICS_PATH": "/circuit-breaker"}, "FENDER_METRICS_PATH", "fixed paths"),
        ({"FENDER_HEALTH_PREFIX": "/status"}, "FENDER_HEALTH_PREFIX", "fixed paths"),
        ({"FENDER_HEALTH_PREFIX": "/status/style.css"}, "FENDER_HEALTH_PREFIX", "fixed paths"),
        ({"FENDER_HEALTH_PREFIX": "/metrics"}, "FENDER_METRICS_PATH", "FENDER_HEALTH_PREFIX"),
        (
            {"FENDER_METRICS_PATH": "/readyz", "FENDER_HEALTH_ALIASES": "true"},
            "FENDER_METRICS_PATH",
            "FENDER_HEALTH_ALIASES",
        ),
        (
            {"FENDER_HEALTH_PREFIX": "/healthz", "FENDER_HEALTH_ALIASES": "true"},
            "FENDER_HEALTH_PREFIX",
            "FENDER_HEALTH_ALIASES",
        ),
    ],
)
def test_a_path_taken_twice_names_the_variable_to_change(env, blamed, mentioned):
    with pytest.raises(ConfigurationError) as raised:
        load(**env)
    assert raised.value.field == blamed
    defaults = {"FENDER_METRICS_PATH": "/metrics", "FENDER_HEALTH_PREFIX": "/health"}
    assert raised.value.value == env.get(blamed, defaults[blamed])
    assert mentioned in raised.value.expected


@pytest.mark.parametrize(
    "env",
    [
        {"FENDER_METRICS_PATH": "/health", "METRICS_ENABLED": "false"},
        {"FENDER_METRICS_PATH": "/healthz"},  # the aliases are off
        {"FENDER_HEALTH_PREFIX": "/livez"},
        {"FENDER_HEALTH_PREFIX": "/health/v2", "FENDER_METRICS_PATH": "/health"},
        {"FENDER_METRICS_PATH": "/health/other"},
        {"FENDER_METRICS_PATH": "/status/other"},
    ],
)
def test_paths_that_do_not_collide_are_accepted(env):
    load(**env)


def test_a_path_conflict_given_to_install_is_refused_too():
    with pytest.raises(ConfigurationError) as raised:
        load_settings({}, env_file=None, env="development", metrics_path="/health/ready")
    assert raised.value.field == "FENDER_METRICS_PATH"


@given(
    metrics=st.sampled_from(["/metrics", "/health", "/status", "/livez", "/hc/ready", "/x"]),
    prefix=st.sampled_from(["/health", "/hc", "/status", "/livez", "/metrics", "/x"]),
    metrics_on=st.booleans(),
    aliases=st.booleans(),
)
def test_settings_refuse_exactly_what_install_could_not_serve(metrics, prefix, metrics_on, aliases):
    served = [prefix + sub for sub in HEALTH_SUBPATHS] + list(FIXED_PATHS)
    served += list(ALIAS_PATHS) if aliases else []
    served += [metrics] if metrics_on else []
    environ = {
        "FENDER_METRICS_PATH": metrics,
        "FENDER_HEALTH_PREFIX": prefix,
        "METRICS_ENABLED": str(metrics_on),
        "FENDER_HEALTH_ALIASES": str(aliases),
    }
    if len(set(served)) < len(served):
        with pytest.raises(ConfigurationError):
            load(**environ)
        return
    settings = load(**environ)
    runtime = Runtime(settings, flavour=ASGI, logging=False)
    # Settings know the table install builds: same paths, same order.
    assert list(runtime.endpoints.paths) == list(endpoint_paths(settings))
