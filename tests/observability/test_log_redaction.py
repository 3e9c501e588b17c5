"""Secrets never reach a log line, wherever an event carries them; the rest stays as it was.

Each case logs through the path production takes (structlog, a third-party stdlib logger, an
exception's traceback, the access line's fast path) into the JSON renderer, and the rendered
text is searched for every secret value.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import structlog

import fender
from fender.errors import ConfigurationError
from fender.observability._logging import access_log, configure_logging, get_logger
from fender.observability._redaction import REDACTED, Redactor
from fender.settings import load_settings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNlY3JldA"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRETS = ("hunter2", "s3cr3t-t0ken", "ak_live_51H", "sid-9f8e7d", "pa55:w/rd", JWT, AWS_KEY_ID)


def settings(**env: str):
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    yield
    structlog.contextvars.clear_contextvars()
    configure_logging(settings())


def rendered(log: Callable[[], None], **env: str) -> str:
    """What ``log`` writes, as JSON lines (also checked to parse)."""
    stream = io.StringIO()
    configure_logging(settings(**env), fmt="json", stream=stream)
    log()
    text = stream.getvalue()
    assert text, "nothing was logged"
    for line in text.splitlines():
        orjson.loads(line)
    return text


def raise_and_log(logger: Any, exc: BaseException) -> None:
    """Log ``exc`` with its traceback, as an ``except`` block does (stdlib or structlog)."""
    try:
        raise exc
    except type(exc):
        logger.exception("failed")


slog = get_logger("app.orders")
lib = logging.getLogger("thirdparty.client")

CASES: list[Any] = [
    pytest.param(lambda: slog.info("login with password=hunter2 failed"), id="message-pair"),
    pytest.param(lambda: slog.info("login", password="hunter2"), id="kwarg"),
    pytest.param(
        lambda: slog.info("login", db_password="hunter2", PASSWORD="hunter2"), id="kwarg-affixes"
    ),
    pytest.param(lambda: slog.info("login", **{"x-api-key": "ak_live_51H"}), id="kwarg-dashed"),
    pytest.param(
        lambda: slog.info("login", user={"name": "bob", "accessToken": "s3cr3t-t0ken"}),
        id="nested-camel",
    ),
    pytest.param(
        lambda: slog.info("x", deep={"a": [{"b": ({"client_secret": "hunter2"},)}]}),
        id="deep-list-tuple",
    ),
    pytest.param(
        lambda: slog.info(
            "x", headers={"Authorization": "Bearer s3cr3t-t0ken", "Cookie": "sid=sid-9f8e7d"}
        ),
        id="headers-dict",
    ),
    pytest.param(
        lambda: slog.info(
            "x",
            headers=[
                (b"authorization", b"Bearer s3cr3t-t0ken"),
                (b"set-cookie", b"sid=sid-9f8e7d"),
            ],
        ),
        id="asgi-header-list",
    ),
    pytest.param(
        lambda: slog.info(
            "x", environ={"HTTP_AUTHORIZATION": "Basic hunter2", "HTTP_COOKIE": "a=sid-9f8e7d"}
        ),
        id="wsgi-environ",
    ),
    pytest.param(
        lambda: slog.info(
            "sent Authorization: Bearer s3cr3t-t0ken\nand Cookie: sid=sid-9f8e7d; theme=dark"
        ),
        id="headers-in-text",
    ),
    pytest.param(lambda: slog.info("got Bearer s3cr3t-t0ken from the client"), id="bearer-in-text"),
    pytest.param(lambda: slog.warning("bad_token", value=JWT), id="bare-jwt"),
    pytest.param(lambda: slog.info("login", jwt="s3cr3t-t0ken", csrftoken="hunter2"), id="jwt-key"),
    pytest.param(lambda: lib.info("assumed role with %s", AWS_KEY_ID), id="aws-key-id"),
    pytest.param(
        lambda: slog.info("x", dump=str({"password": "hunter2", "token": "s3cr3t-t0ken"})),
        id="dict-repr-in-text",
    ),
    pytest.param(
        lambda: slog.info("connect postgresql://app:pa55:w/rd@db:5432/app"), id="url-in-message"
    ),
    pytest.param(lambda: slog.info("x", url="redis://:hunter2@cache:6379/0"), id="url-kwarg"),
    pytest.param(
        lambda: slog.info(
            "x", url="https://api.example.com/v1?api_key=ak_live_51H&token=s3cr3t-t0ken&page=2"
        ),
        id="query-options",
    ),
    pytest.param(
        lambda: slog.info("GET /callback?session=sid-9f8e7d&state=ok"), id="query-in-text"
    ),
    pytest.param(lambda: slog.info("x", raw=b"password=hunter2"), id="bytes"),
    pytest.param(
        lambda: raise_and_log(slog, ValueError("bad login password=hunter2 for bob")),
        id="traceback-structlog",
    ),
    pytest.param(
        lambda: raise_and_log(lib, RuntimeError({"api_key": "ak_live_51H"})), id="traceback-stdlib"
    ),
    pytest.param(
        lambda: lib.warning(
            "retrying %s with %s", "https://bob:hunter2@api.example.com/", {"token": "s3cr3t-t0ken"}
        ),
        id="stdlib-percent-args",
    ),
    pytest.param(
        lambda: lib.warning(
            "request sent",
            extra={"client_secret": "hunter2", "headers": {"Cookie": "sid=sid-9f8e7d"}},
        ),
        id="stdlib-extra",
    ),
    pytest.param(lambda: lib.info("token=%s", "s3cr3t-t0ken", stack_info=False), id="stdlib-pair"),
    pytest.param(
        lambda: access_log().request(
            "r" * 32,
            "GET",
            "/reset;jsessionid=sid-9f8e7d",
            200,
            1.0,
            5,
            "10.0.0.1",
            "bot token=s3cr3t-t0ken",
        ),
        id="access-fast-path",
    ),
    pytest.param(
        lambda: (
            structlog.contextvars.bind_contextvars(api_key="ak_live_51H"),
            access_log().request("r" * 32, "GET", "/", 200, 1.0, 5, None, None),
        ),
        id="access-bound-context",
    ),
]


@pytest.mark.parametrize("log", CASES)
def test_no_secret_survives(log):
    text = rendered(log)
    for secret in SECRETS:
        assert secret not in text
    assert REDACTED in text or "***" in text


@pytest.mark.parametrize("log", CASES)
def test_with_redaction_off_the_secret_is_written(log):
    text = rendered(log, FENDER_LOG_REDACT="false")
    assert any(secret in text for secret in SECRETS)


def test_what_is_no_secret_is_left_as_it_was():
    (event,) = [
        orjson.loads(line)
        for line in rendered(
            lambda: slog.info(
                "order 42 placed: total=12.50",
                order_id=42,
                price=12.5,
                paid=True,
                note=None,
                max_tokens=512,
                author="bob",
                password_set=True,  # a flag says nothing of the secret
                items=["a", ("b", 2)],
                when="2026-01-01T10:20:30Z",
                url="https://example.com/a?page=2",
                mail="bob@example.com",
                client="192.168.1.77",
                headers={"Accept": "*/*", "User-Agent": "curl/8"},
            )
        ).splitlines()
    ]
    assert event["event"] == "order 42 placed: total=12.50"
    assert event["order_id"] == 42
    assert event["price"] == 12.5
    assert event["paid"] is True
    assert event["note"] is None
    assert event["max_tokens"] == 512
    assert event["author"] == "bob"
    assert event["password_set"] is True
    assert event["items"] == ["a", ["b", 2]]
    assert event["when"] == "2026-01-01T10:20:30Z"
    assert event["url"] == "https://example.com/a?page=2"
    assert event["mail"] == "bob@example.com"  # e-mails and addresses: opt-in
    assert event["client"] == "192.168.1.77"
    assert event["headers"] == {"Accept": "*/*", "User-Agent": "curl/8"}


def test_the_access_line_keeps_its_fields():
    (event,) = [
        orjson.loads(line)
        for line in rendered(
            lambda: access_log().request(
                "r" * 32,
                "GET",
                "/items/{item_id}",
                200,
                1.5,
                12,
                "10.0.0.1",
                "Mozilla/5.0 (X11; rv:109.0)",
            )
        ).splitlines()
    ]
    assert event["route"] == "/items/{item_id}"
    assert event["client"] == "10.0.0.1"
    assert event["user_agent"] == "Mozilla/5.0 (X11; rv:109.0)"


def test_the_callers_objects_are_not_changed():
    headers = {"Authorization": "Bearer s3cr3t-t0ken"}
    pairs = [("cookie", "sid=sid-9f8e7d")]
    rendered(lambda: slog.info("x", headers=headers, pairs=pairs))
    assert headers == {"Authorization": "Bearer s3cr3t-t0ken"}
    assert pairs == [("cookie", "sid=sid-9f8e7d")]


def test_extra_keys_are_masked_as_parts_of_names_and_in_text():
    text = rendered(
        lambda: slog.info(
            "card-number: 4111 saved", customer={"card_number": "4111"}, userSsn="078"
        ),
        FENDER_LOG_REDACT_KEYS="ssn, card-number",
    )
    assert "4111" not in text
    assert "078" not in text


def test_containers_deeper_than_the_bound_are_masked_as_text():
    deep: Any = {"password": "hunter2"}
    for _ in range(Redactor().max_depth + 5):
        deep = {"next": deep}
    text = rendered(lambda: slog.info("x", deep=deep))
    assert "hunter2" not in text


def test_a_console_traceback_is_masked_too():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging(settings(), stream=stream)
    raise_and_log(slog, ValueError("password=hunter2"))
    assert "\x1b[" in stream.getvalue()  # the console renderer, with its colors
    assert "ValueError" in stream.getvalue()
    assert "hunter2" not in stream.getvalue()


def test_a_console_line_keeps_the_exception_it_was_given():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging(settings(), stream=stream)
    slog.error("login failed", exc_info=ValueError("no user for password=hunter2"))
    assert "ValueError: no user for password=" in stream.getvalue()
    assert "hunter2" not in stream.getvalue()


def test_an_app_request_is_logged_masked():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    stream = io.StringIO()
    wrapped = fender.asgi.wrap(app, env="development", log_format="json")
    configure_logging(settings(), fmt="json", stream=stream)

    async def call() -> None:
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get(
                "/a;session=sid-9f8e7d", headers={"User-Agent": "x password=hunter2"}
            )
            assert answer.status_code == 200

    asyncio.run(call())
    (event,) = [
        e for e in map(orjson.loads, stream.getvalue().splitlines()) if e["event"] == "request"
    ]
    assert event["route"] == f"/a;session={REDACTED}"
    assert event["user_agent"] == f"x password={REDACTED}"


def test_a_bad_extra_key_name_fails_at_start_up():
    with pytest.raises(ConfigurationError) as raised:
        settings(FENDER_LOG_REDACT_KEYS="ssn,card number")
    assert raised.value.field == "FENDER_LOG_REDACT_KEYS"


# --- opt-in: e-mail addresses and IP addresses ------------------------------------------------


def test_emails_are_masked_when_asked():
    text = rendered(
        lambda: slog.info("mail to bob.smith+tag@example.co.uk failed", to=["alice@example.com"]),
        FENDER_LOG_REDACT_EMAILS="true",
    )
    assert "example.co" not in text
    assert "alice@" not in text
    assert text.count(REDACTED) == 2


def test_ip_addresses_are_anonymised_when_asked():
    def log() -> None:
        access_log().request("r" * 32, "GET", "/", 200, 1.0, 5, "192.168.1.77", "curl/8")
        access_log().request(
            "r" * 32, "GET", "/", 200, 1.0, 5, "2001:db8:85a3:1:2:8a2e:370:7334", None
        )
        slog.info("from 10.1.2.3:8080 and [2001:db8::1] at 10:20:30 with Chrome/120.0.6099.109")

    first, second, third = map(
        orjson.loads, rendered(log, FENDER_LOG_ANONYMIZE_IP="true").splitlines()
    )
    assert first["client"] == "192.168.1.0"
    assert second["client"] == "2001:db8:85a3::"  # the last 80 bits zeroed
    assert (
        third["event"]
        == "from 10.1.2.0:8080 and [2001:db8::] at 10:20:30 with Chrome/120.0.6099.109"
    )


def test_opt_ins_need_redaction_on():
    text = rendered(
        lambda: access_log().request(
            "r" * 32, "GET", "/", 200, 1.0, 5, "192.168.1.77", "bob@example.com"
        ),
        FENDER_LOG_REDACT="false",
        FENDER_LOG_REDACT_EMAILS="true",
        FENDER_LOG_ANONYMIZE_IP="true",
    )
    assert "192.168.1.77" in text
    assert "bob@example.com" in text


# --- which keys are secret --------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "PASSWORD",
        "db_password",
        "new-password",
        "passwd",
        "pwd",
        "password_confirmation",
        "secret",
        "SECRET_KEY",
        "client_secret",
        "clientSecret",
        "token",
        "access_token",
        "accessToken",
        "refresh-token",
        "X-Auth-Token",
        "api_key",
        "apiKey",
        "APIKey",
        "x-api-key",
        "apikey",
        "access_key",
        "aws.access_key",
        "private_key",
        "privateKey",
        "session",
        "sessionid",
        "session_id",
        "JSESSIONID",
        "authorization",
        "Proxy-Authorization",
        "HTTP_AUTHORIZATION",
        "cookie",
        "Cookies",
        "Set-Cookie",
        "auth",
        "credentials",
        "signature",
        "jwt",
        "id_jwt",
        "bearer",
        "csrftoken",
        "X-CSRF-Token",
        "xsrf_token",
        b"authorization",
    ],
)
def test_secret_keys(key):
    assert Redactor().is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "max_tokens",
        "tokens_used",
        "author",
        "passenger",
        "bypass",
        "keyboard",
        "cache_key",
        "key",
        "route",
        "user",
        "sessions",
        "oauth_state",
        "design",
        "signal",
        "cookiejar",
        42,
        None,
    ],
)
def test_keys_that_are_not_secret(key):
    assert not Redactor().is_secret_key(key)


@pytest.mark.parametrize("module", ["fender.observability._redaction", "fender.settings._redact"])
def test_the_examples_in_the_docstrings_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted
    assert not result.failed
