from __future__ import annotations

import asyncio
import http.server
import socket
import sys
import threading

import pytest
import sqlalchemy

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health import (
    Check,
    CheckOutcome,
    HealthRegistry,
    celery_check,
    database_check,
    disk_check,
    http_check,
    memory_check,
    redis_check,
)


def run_one(check: Check) -> CheckOutcome:
    """Run one check through a registry on a fresh loop, as an ASGI app would."""
    registry = HealthRegistry()
    registry.add(check)
    try:
        return asyncio.run(registry.run()).checks[check.name]
    finally:
        registry.close()


# --- disk and memory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("warn", "fail", "expected"),
    [(0.0, 0.0, Status.PASS), (100.0, 0.0, Status.WARN), (100.0, 100.0, Status.FAIL)],
)
def test_disk_check_on_this_machine(warn, fail, expected):
    outcome = run_one(disk_check("/", warn_below_percent=warn, fail_below_percent=fail))
    result = outcome.result
    assert result.status is expected
    assert 0.0 <= result.observed_value <= 100.0
    assert result.observed_unit == "percent"
    assert result.details["total_bytes"] > 0
    assert outcome.check.key == "disk:utilization"
    assert outcome.check.critical is False
    if expected is not Status.PASS:
        assert "% free on /" in result.output


def test_disk_check_on_a_missing_path_fails():
    result = run_one(disk_check("/no/such/path/for/fender")).result
    assert result.status is Status.FAIL
    assert result.output.startswith("FileNotFoundError")


@pytest.mark.parametrize(
    ("limit", "warn", "expected"),
    [
        (1 << 50, 0.85, Status.PASS),
        (1 << 50, 0.0, Status.WARN),
        (1, 0.85, Status.FAIL),
        (lambda: 1, 0.85, Status.FAIL),
        (lambda: None, 0.0, Status.WARN),
        (None, 0.0, Status.WARN),
    ],
    ids=["pass", "warn", "fail", "callable", "callable-none", "machine"],
)
def test_memory_check_on_this_machine(limit, warn, expected):
    result = run_one(memory_check(limit_bytes=limit, warn_ratio=warn)).result
    assert result.status is expected
    assert result.observed_unit == "percent"
    assert result.details["rss_bytes"] > 0
    if expected is not Status.PASS:
        assert result.output.startswith("RSS ")


@pytest.mark.parametrize(
    "factory",
    [
        lambda: disk_check(warn_below_percent=5, fail_below_percent=10),
        lambda: disk_check(warn_below_percent=101),
        lambda: memory_check(warn_ratio=0.99, fail_ratio=0.9),
        lambda: memory_check(limit_bytes=0),
        lambda: memory_check(limit_bytes=True),
    ],
)
def test_resource_check_validation(factory):
    with pytest.raises(ConfigurationError):
        factory()


# --- HTTP dependency ----------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/ok": 200, "/error": 500, "/moved": 302}.get(self.path, 404)
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "/error")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")

    def log_message(self, *_args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def refused_url():
    with socket.socket() as sock:  # a port just freed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://user:secret@127.0.0.1:{port}/ok"


BACKENDS = ["httpx", "urllib"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("path", "expected", "output"),
    [
        ("/ok", Status.PASS, ""),
        ("/error", Status.FAIL, "HTTP 500"),
        ("/missing", Status.FAIL, "HTTP 404"),
        ("/moved", Status.PASS, ""),  # not followed: the 302 is the answer
    ],
)
def test_http_check(server, backend, path, expected, output):
    check = http_check(server + path, backend=backend, timeout=2.0)
    assert check.is_async is (backend == "httpx")
    result = run_one(check).result
    assert result.status is expected
    assert result.output == output
    assert result.observed_unit == "ms"
    assert result.observed_value >= 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_http_check_connection_refused(backend):
    result = run_one(http_check(refused_url(), backend=backend, timeout=1.0)).result
    assert result.status is Status.FAIL
    assert result.details["error"] in {"ConnectError", "URLError"}
    assert "secret" not in result.output


def test_http_check_options(server):
    check = http_check(server + "/ok", expect_status={204}, method="get", trust_env=False)
    assert check.name.startswith("http-127.0.0.1-")
    assert check.key == f"{check.name}:responseTime"
    assert run_one(check).result.output == "HTTP 200"
    urllib_check = http_check(server + "/ok", backend="urllib", trust_env=False)
    assert run_one(urllib_check).status is Status.PASS


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "file:///etc/passwd", "http://", "not a url", "https://u:pw@/x"]
)
def test_http_check_rejects_bad_urls(url):
    with pytest.raises(ConfigurationError) as info:
        http_check(url)
    assert info.value.field == "url"
    assert "pw@" not in str(info.value)


def test_http_check_rejects_a_bad_backend():
    with pytest.raises(ConfigurationError):
        http_check("http://x", backend="requests")


# --- Redis --------------------------------------------------------------------------------------


class SyncRedis:
    def __init__(self, reply=True, error=None):
        self.reply, self.error = reply, error

    def ping(self):
        if self.error:
            raise self.error
        return self.reply


class AsyncRedis:
    async def ping(self):
        return True


class RedisAsyncioLike:
    """Like redis.asyncio.Redis: ping() is plain, execute_command is the coroutine."""

    async def execute_command(self, *args):
        return args == ("PING",)

    def ping(self):
        return self.execute_command("PING")


class Unrecognised:
    def ping(self):
        return AsyncRedis().ping()


@pytest.mark.parametrize(
    ("client", "expected", "is_async"),
    [
        (SyncRedis(), Status.PASS, False),
        (SyncRedis(reply=False), Status.FAIL, False),
        (
            SyncRedis(error=ConnectionError("redis://:secret@cache:6379 refused")),
            Status.FAIL,
            False,
        ),
        (AsyncRedis(), Status.PASS, True),
        (RedisAsyncioLike(), Status.PASS, True),
        (Unrecognised(), Status.PASS, False),
    ],
    ids=["pass", "false", "raises", "async", "redis-asyncio-like", "awaitable-from-sync"],
)
def test_redis_check(client, expected, is_async):
    check = redis_check(client)
    assert check.is_async is is_async
    assert check.key == "redis:responseTime"
    assert check.component_type == "datastore"
    result = run_one(check).result
    assert result.status is expected
    assert "secret" not in result.output


def test_redis_check_with_a_real_client_on_a_dead_port():
    import redis
    import redis.backoff
    import redis.retry

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password="secret",
        socket_timeout=0.5,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
    try:
        result = run_one(redis_check(client)).result
    finally:
        client.close()
    assert result.status is Status.FAIL
    assert result.output.startswith("ConnectionError")
    assert "secret" not in result.output


def test_redis_check_needs_ping():
    with pytest.raises(ConfigurationError):
        redis_check(object())


# --- database ----------------------------------------------------------------------------------


def test_database_check_sqlite():
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        outcome = run_one(database_check(engine))
    finally:
        engine.dispose()
    assert outcome.status is Status.PASS
    assert outcome.check.key == "database:responseTime"
    assert outcome.result.observed_unit == "ms"


def test_database_check_bad_query_fails():
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        result = run_one(database_check(engine, query="SELECT * FROM missing")).result
    finally:
        engine.dispose()
    assert result.status is Status.FAIL
    assert result.output.startswith("OperationalError")


def test_database_check_unreachable_server_does_not_leak_the_password():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://app:secret@127.0.0.1:{port}/app",
        connect_args={"connect_timeout": 1},
    )
    try:
        result = run_one(database_check(engine, name="pg")).result
    finally:
        engine.dispose()
    assert result.status is Status.FAIL
    assert result.output.startswith("OperationalError")
    assert "secret" not in result.output


class FakeAsyncEngine:
    """Duck-types sqlalchemy.ext.asyncio.AsyncEngine (needs greenlet, not installed here)."""

    sync_engine = None

    def __init__(self):
        self.executed = []

    def connect(self):
        engine = self

        class Connection:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                return False

            async def execute(self, statement):
                engine.executed.append(str(statement))

        return Connection()


def test_database_check_async_engine():
    engine = FakeAsyncEngine()
    check = database_check(engine)
    assert check.is_async
    assert run_one(check).status is Status.PASS
    assert engine.executed == ["SELECT 1"]


# --- celery -------------------------------------------------------------------------------------


def test_celery_check_without_celery(monkeypatch):
    monkeypatch.setitem(sys.modules, "celery", None)  # makes "import celery" fail
    with pytest.raises(ConfigurationError) as info:
        celery_check(object())
    assert info.value.field == "celery"
    assert "pip install celery" in str(info.value)


def test_celery_check_settings():
    """(Against a real broker and worker: test_health_celery.py.)"""
    check = celery_check(object(), timeout=0.2)
    assert check.critical is False
    assert check.timeout == pytest.approx(1.4)  # the broker probe and the ping, and room
    with pytest.raises(ConfigurationError):
        celery_check(object(), timeout=0)
