"""One line per event, in one format, at the levels the app and its tests chose.

Levels: fender owns its handler and its own ``fender`` loggers; the root logger's level is the
app's or the test's (``caplog.set_level``) once they set it. Sources: server access lines that
an app's logging config turns back on, uvicorn's ANSI ``color_message``, Python warnings, and
console handlers frameworks attach (Flask's, Django's) all end up as one fender line.
"""

from __future__ import annotations

import io
import logging
import logging.config
import sys
import warnings
from collections.abc import Iterator

import orjson
import pytest
import structlog
from uvicorn.config import LOGGING_CONFIG

from fender.observability._logging import (
    RequestContext,
    access_log,
    adopt_loggers,
    bind_request,
    configure_logging,
    get_logger,
    reset_request,
)
from fender.settings import load_settings
from fender.testing import capture_logs


def settings(**env: str):
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Every test leaves logging as fender configures it for the suite."""
    yield
    configure_logging(settings())


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


# --- levels -----------------------------------------------------------------------------------


def test_caplog_set_level_survives_configure(caplog):
    caplog.set_level(logging.DEBUG)
    configure_logging(settings())  # what an app's first install does
    logging.getLogger("app.orders").debug("order detail")
    get_logger("app.orders").debug("structured detail")
    assert "order detail" in caplog.messages
    assert any(
        isinstance(r.msg, dict) and r.msg.get("event") == "structured detail"
        for r in caplog.records
    )
    assert logging.getLogger().level == logging.DEBUG


def test_a_root_level_the_app_chose_is_kept_and_fender_still_logs():
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.ERROR)  # the app's choice, made before fender
    try:
        with capture_logs(settings()) as logs:
            logging.getLogger("app.chatty").info("app detail")
            get_logger("fender.lifecycle").info("fender event")
            assert root.level == logging.ERROR
    finally:
        root.setLevel(before)
    assert [e["event"] for e in logs.events] == ["fender event"]


def test_log_level_bounds_fenders_output_when_root_is_lower(caplog):
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    configure_logging(settings(LOG_LEVEL="INFO"), fmt="json", stream=stream)
    logging.getLogger("app").debug("for the test only")
    logging.getLogger("app").info("for everyone")
    assert [e["event"] for e in events(stream)] == ["for everyone"]
    assert "for the test only" in caplog.messages


def test_fender_sets_the_root_level_it_set_before():
    stream = io.StringIO()
    configure_logging(settings(LOG_LEVEL="WARNING"), fmt="json", stream=stream)
    assert logging.getLogger().level == logging.WARNING
    configure_logging(settings(LOG_LEVEL="DEBUG"), fmt="json", stream=stream)
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("lib").debug("shown")
    assert [e["event"] for e in events(stream)] == ["shown"]


# --- the access line: the same fields in production (JSON) and development (console) --------


def test_the_json_access_line_has_the_fields_of_any_other_event():
    stream = io.StringIO()
    configure_logging(settings(), fmt="json", stream=stream)
    fields = ("rid-0001-abcd", "GET", "/items/{id}", 200, 1.5, 12, "10.0.0.1", "probe/1")
    token = bind_request(RequestContext("rid-0001-abcd", "a" * 32, "b" * 16))
    structlog.contextvars.bind_contextvars(tenant="acme", user_id=42)
    try:
        access_log().request(*fields)  # production's fast path
        keys = ("request_id", "method", "route", "status", "duration_ms", "bytes", "client")
        get_logger("fender.access").info(  # the structlog path development takes
            "request", **dict(zip(keys, fields, strict=False)), user_agent="probe/1"
        )
    finally:
        structlog.contextvars.clear_contextvars()
        reset_request(token)
    fast, chain = events(stream)
    assert fast["tenant"] == "acme"
    assert fast["user_id"] == 42
    assert fast["trace_id"] == "a" * 32
    assert set(fast) == set(chain)
    assert {k: v for k, v in fast.items() if k != "timestamp"} == {
        k: v for k, v in chain.items() if k != "timestamp"
    }


def test_an_explicit_field_wins_over_a_bound_one():
    stream = io.StringIO()
    configure_logging(settings(), fmt="json", stream=stream)
    structlog.contextvars.bind_contextvars(status="bound", route="bound")
    try:
        access_log().request("rid-0002-abcd", "GET", "/x", 204, 0.1, 0, None, None)
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = events(stream)
    assert (line["status"], line["route"]) == (204, "/x")


# --- sources ----------------------------------------------------------------------------------


def test_uvicorn_access_lines_stay_off_after_an_app_applies_uvicorns_config(capsys):
    with capture_logs(settings()) as logs:
        logging.config.dictConfig(LOGGING_CONFIG)  # an app's (or uvicorn.run's) logging setup
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/", "1.1", 200
        )
    out, err = capsys.readouterr()
    assert "GET / HTTP/1.1" not in out + err
    assert logs.events == []


def test_uvicorn_access_lines_can_stay_on_after_an_apps_config(capsys):
    with capture_logs(settings(FENDER_SERVER_ACCESS_LOG="true")) as logs:
        logging.config.dictConfig(LOGGING_CONFIG)
        adopt_loggers()  # what fender's start does after the server configured logging
        logging.getLogger("uvicorn.access").info("GET / 200")
    out, err = capsys.readouterr()
    assert "GET / 200" not in out + err  # not uvicorn's own line
    assert [e["event"] for e in logs.events] == ["GET / 200"]  # fender's


def test_adopt_loggers_takes_back_what_a_later_config_gave_its_own_handlers(capsys):
    with capture_logs(settings()) as logs:
        logging.config.dictConfig(LOGGING_CONFIG)
        adopt_loggers()
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    out, err = capsys.readouterr()
    assert "Started server process" not in out + err
    assert [e["event"] for e in logs.events] == ["Started server process [42]"]


def test_uvicorn_color_message_does_not_reach_the_json_line():
    with capture_logs(settings()) as logs:
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]",
            42,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
        )
    (event,) = logs.events
    assert event["event"] == "Started server process [42]"
    assert "color_message" not in event
    assert "\x1b" not in logs.lines[0]


def test_python_warnings_are_json_lines(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with capture_logs(settings()) as logs:
            warnings.warn("old_api() is deprecated", DeprecationWarning, stacklevel=1)
    (event,) = logs.events
    assert event["logger"] == "py.warnings"
    assert event["level"] == "warning"
    assert "DeprecationWarning: old_api() is deprecated" in str(event["event"])
    assert "deprecated" not in capsys.readouterr().err


def test_a_console_handler_on_a_propagating_logger_is_dropped(capsys):
    django_like = logging.getLogger("framework.requests")
    handler = logging.StreamHandler(sys.stderr)  # what logging.config makes of "console"
    django_like.addHandler(handler)
    try:
        with capture_logs(settings()) as logs:
            django_like.warning("Not Found: /missing")
    finally:
        django_like.removeHandler(handler)
    assert [e["event"] for e in logs.events] == ["Not Found: /missing"]
    assert "Not Found" not in capsys.readouterr().err


def test_handlers_that_are_not_the_console_are_kept(tmp_path):
    audit = logging.getLogger("app.audit")
    file_handler = logging.FileHandler(tmp_path / "audit.log")
    own = logging.getLogger("app.own")
    own.propagate = False
    console = logging.StreamHandler(sys.stderr)  # the only way out of a non-propagating logger
    own.addHandler(console)
    audit.addHandler(file_handler)
    try:
        configure_logging(settings())
        assert audit.handlers == [file_handler]
        assert own.handlers == [console]
    finally:
        audit.removeHandler(file_handler)
        file_handler.close()
        own.removeHandler(console)
        own.propagate = True


def _merged(processor, **event):
    return processor(None, "info", dict(event))


def test_merge_bound_contextvars_reads_what_structlogs_own_merge_reads():
    import contextvars
    import threading

    import fender.observability._logging as logging_module

    reference = structlog.contextvars.merge_contextvars
    ours = logging_module.merge_bound_contextvars

    def same(**event):
        assert _merged(ours, **event) == _merged(reference, **event)
        return _merged(ours, **event)

    structlog.contextvars.clear_contextvars()
    try:
        assert same(event="x") == {"event": "x"}
        structlog.contextvars.bind_contextvars(tenant="acme", user_id=42, status="bound")
        assert same(event="x", status=200) == {
            "event": "x", "status": 200, "tenant": "acme", "user_id": 42
        }  # fmt: skip
        structlog.contextvars.unbind_contextvars("user_id")  # unbound: not merged
        assert same(event="x") == {"event": "x", "tenant": "acme", "status": "bound"}

        # Another context (a thread, a task) sees only what was bound in it.
        seen = {}

        def elsewhere():
            structlog.contextvars.bind_contextvars(job="nightly")
            seen["thread"] = same(event="t")

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert seen["thread"] == {"event": "t", "job": "nightly"}
        assert "job" not in same(event="x")
        copied = contextvars.copy_context()
        copied.run(structlog.contextvars.bind_contextvars, tenant="other")
        assert copied.run(same, event="c")["tenant"] == "other"
        assert same(event="x")["tenant"] == "acme"
    finally:
        structlog.contextvars.clear_contextvars()


def test_merge_bound_contextvars_falls_back_to_structlogs_without_its_registry(monkeypatch):
    import fender.observability._logging as logging_module

    monkeypatch.setattr(logging_module, "_STRUCTLOG_VARS", None)
    structlog.contextvars.bind_contextvars(tenant="acme")
    try:
        assert _merged(logging_module.merge_bound_contextvars, event="x") == {
            "event": "x", "tenant": "acme"
        }  # fmt: skip
    finally:
        structlog.contextvars.clear_contextvars()
