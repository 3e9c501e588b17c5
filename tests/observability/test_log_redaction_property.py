"""No secret value survives rendering, whatever its characters, wherever it is put.

Secrets are printable text of 4 or more characters. A value logged under a key named like a
secret or as a credential header is masked whole, any character included; in running text a
value ends where the text says it does (a URL is one word, a header runs to the end of its
line, a bare ``name=value`` to a space or delimiter), so those secrets are drawn to match.
The rendered line is parsed and every string in it searched (JSON escapes would hide a leak
from a search of the raw line).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fender.observability._logging import access_log, configure_logging, get_logger
from fender.settings import load_settings

SETTINGS = load_settings({"FENDER_ENV": "development"}, env_file=None)

# Printable: no control characters, surrogates or line separators.
printable = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
secret_st = st.text(printable, min_size=4, max_size=40).filter(lambda s: s.strip() == s)
# One word, as a password written into a URL is (unencoded / ? # @ : included).
url_secret_st = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=30)
# A bare value in text ends at a space, a quote or & ; , (what a query or logfmt line holds).
bare_secret_st = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="\"'&;,\\"),
    min_size=4,
    max_size=30,
)
secret_keys = st.sampled_from(
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "secret",
        "client_secret",
        "SECRET_KEY",
        "token",
        "access_token",
        "accessToken",
        "refresh-token",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "apikey",
        "access_key",
        "private_key",
        "session",
        "sessionid",
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "Set-Cookie",
        "credentials",
        "auth",
    ]
)
url_schemes = st.sampled_from(["https", "redis", "postgresql+psycopg", "amqp"])


def strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def logged(log: Any) -> list[str]:
    stream = io.StringIO()
    configure_logging(SETTINGS, fmt="json", stream=stream)
    try:
        log()
    finally:
        configure_logging(SETTINGS)
    return [s for line in stream.getvalue().splitlines() for s in strings(orjson.loads(line))]


def assert_hidden(secret: str, make: Any) -> None:
    """``make(value)`` logs ``value``; the secret shows nowhere (unless the line has it anyway)."""
    placeholder = "Q" * len(secret)
    assume(not any(secret in s for s in logged(lambda: make(placeholder))))
    assert not [s for s in logged(lambda: make(secret)) if secret in s]


def connect(url: str) -> None:
    raise ConnectionError(f"cannot reach {url}")


def nest(key: str, value: str, depth: int, as_pair: bool) -> Any:
    item: Any = [(key, value)] if as_pair else {key: value}
    for level in range(depth):
        item = {"level": level, "inner": item} if level % 2 else [item, "x"]
    return item


@given(secret_st, secret_keys, st.integers(0, 5), st.booleans())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_value_under_a_secret_key_is_hidden_at_any_depth(secret, key, depth, as_pair):
    assert_hidden(secret, lambda v: get_logger("app").info("x", data=nest(key, v, depth, as_pair)))


@given(secret_st, secret_keys)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_a_value_under_a_secret_key_of_a_stdlib_record_is_hidden(secret, key):
    assert_hidden(secret, lambda v: logging.getLogger("lib").warning("x", extra={key: v}))


@given(url_secret_st, url_schemes, st.sampled_from(["message", "field", "traceback", "access"]))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_password_in_a_url_is_hidden(secret, scheme, where):
    def log(value: str) -> None:
        url = f"{scheme}://app:{value}@db.internal:5432/app"
        if where == "message":
            get_logger("app").info(f"connect {url} failed: refused")
        elif where == "field":
            get_logger("app").info("connect", url=url)
        elif where == "traceback":
            try:
                connect(url)
            except ConnectionError:
                logging.getLogger("lib").exception("failed")
        else:
            access_log().request("r" * 32, "GET", "/", 200, 1.0, 0, None, f"probe {url}")

    assert_hidden(secret, log)


@given(bare_secret_st, st.sampled_from(["token", "api_key", "password", "client_secret"]))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_a_secret_query_option_is_hidden(secret, name):
    def log(value: str) -> None:
        get_logger("app").info(f"GET https://api.example.com/v1?page=2&{name}={value}&x=1")
        get_logger("app").info(f"GET /v1?{name}={value}")

    assert_hidden(secret, log)


@given(
    secret_st,
    st.sampled_from(["Authorization: Bearer ", "Proxy-Authorization: Basic ", "Cookie: sid="]),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_credential_header_is_hidden(secret, header):
    name = header.split(":")[0]

    def log(value: str) -> None:
        get_logger("app").info(f"sent {header}{value}\nthen got 401")
        get_logger("app").info("sent", headers={name: header.split(": ")[1] + value})
        raw = [(name.lower().encode(), (header.split(": ")[1] + value).encode())]
        get_logger("app").info("sent", scope_headers=raw)

    assert_hidden(secret, log)
