from __future__ import annotations

import asyncio
import io
import logging

import orjson
import pytest

from fender import log_performance
from fender.observability._logging import configure_logging, get_logger
from fender.settings import load_settings
from fender.testing import capture_logs


def settings(**env: str):
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


def test_stdlib_and_structlog_share_one_json_format():
    with capture_logs(settings()) as logs:
        get_logger("mine").info("structured", answer=42)
        logging.getLogger("thirdparty.lib").warning("plain %s", "text")
        logging.getLogger("gunicorn.error").info("Booting worker with pid: %s", 123)
        logging.getLogger("uvicorn.error").info("Started server process")
    events = logs.events
    assert [e["event"] for e in events] == [
        "structured",
        "plain text",
        "Booting worker with pid: 123",
        "Started server process",
    ]
    for event in events:
        assert {"timestamp", "level", "logger", "event"} <= set(event)
    assert events[0]["answer"] == 42
    assert events[1]["logger"] == "thirdparty.lib"


def test_server_access_loggers_are_off_by_default():
    with capture_logs(settings()) as logs:
        logging.getLogger("uvicorn.access").info("GET / 200")
        logging.getLogger("gunicorn.access").info("GET / 200")
    assert logs.events == []


def test_server_access_loggers_can_stay_on():
    with capture_logs(settings(FENDER_SERVER_ACCESS_LOG="true")) as logs:
        logging.getLogger("uvicorn.access").info("GET / 200")
    assert [e["event"] for e in logs.events] == ["GET / 200"]


def test_log_level_is_honoured():
    stream = io.StringIO()
    configure_logging(settings(LOG_LEVEL="WARNING"), fmt="json", stream=stream)
    try:
        get_logger("x").info("hidden")
        get_logger("x").warning("shown")
        logging.getLogger("y").info("hidden too")
    finally:
        configure_logging(settings())
    assert [orjson.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_console_format_in_development_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging(settings(), stream=stream)
    try:
        get_logger("x").info("pretty", key="value")
    finally:
        configure_logging(settings())
    line = stream.getvalue()
    assert "pretty" in line
    assert "\x1b[" in line  # colored
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(line)


@pytest.mark.parametrize("env", [{"FENDER_ENV": "production"}, {}])
def test_json_when_production_or_not_a_terminal(env):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return "FENDER_ENV" in env

    stream = Terminal()
    configure_logging(
        load_settings({"FENDER_ENV": "development", **env}, env_file=None), stream=stream
    )
    try:
        get_logger("x").info("machine readable")
    finally:
        configure_logging(settings())
    assert orjson.loads(stream.getvalue())["event"] == "machine readable"


def test_exceptions_are_rendered_in_json():
    def fail() -> None:
        raise ValueError("bad input")

    with capture_logs(settings()) as logs:
        try:
            fail()
        except ValueError:
            get_logger("x").exception("failed")
    (event,) = logs.events
    assert "ValueError: bad input" in event["exception"]
    assert event["level"] == "error"


def test_log_performance_sync_and_async():
    @log_performance
    def add(a: int, b: int) -> int:
        return a + b

    @log_performance(threshold_ms=0, name="slow.one")
    async def slow() -> str:
        await asyncio.sleep(0)
        return "done"

    with capture_logs(settings()) as logs:
        assert add(2, 3) == 5
        assert asyncio.run(slow()) == "done"
    (perf,) = logs.named("performance")
    assert perf["function"].endswith("add")
    assert perf["duration_ms"] >= 0
    (warn,) = logs.named("slow_call")
    assert warn["function"] == "slow.one"
    assert warn["level"] == "warning"
    assert add.__name__ == "add"
    assert asyncio.iscoroutinefunction(slow)


def test_log_performance_reports_failures_and_reraises():
    @log_performance
    def broken() -> None:
        raise KeyError("x")

    with capture_logs(settings()) as logs, pytest.raises(KeyError):
        broken()
    (perf,) = logs.named("performance")
    assert perf["failed"] is True


def test_lines_written_to_a_file_descriptor_are_whole(tmp_path):
    path = tmp_path / "out.log"
    with path.open("w") as handle:
        configure_logging(settings(), fmt="json", stream=handle)
        try:
            for i in range(100):
                get_logger("x").info("line", i=i, pad="y" * 5000)
        finally:
            configure_logging(settings())
    lines = path.read_text().splitlines()
    assert [orjson.loads(line)["i"] for line in lines] == list(range(100))
