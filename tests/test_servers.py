"""The server fixtures work, faults included: later suites inject faults with them."""

from __future__ import annotations

import socket

import pytest
import redis
import sqlalchemy as sa

import servers
from servers import CommandServer, RedisServer, find_redis, free_port, missing


@pytest.mark.redis
def test_redis_kill_pause_resume_restart(redis_server):
    client = redis_server.client(socket_timeout=0.3)
    client.set("k", "v")
    assert client.get("k") == b"v"

    redis_server.pause()
    with pytest.raises(redis.TimeoutError):
        client.get("k")
    redis_server.resume()
    assert client.ping()

    redis_server.kill()
    assert not redis_server.running
    with pytest.raises(redis.ConnectionError):
        client.get("k")

    redis_server.restart()
    assert client.ping()
    assert client.get("k") is None  # no persistence: a restart is a fresh server
    client.close()


@pytest.mark.redis
def test_redis_url_is_a_clean_database(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("left-behind", 1)
    client.close()


@pytest.mark.postgres
def test_postgres_url_gives_a_fresh_database(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x int)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1
    engine.dispose()


@pytest.mark.postgres
def test_postgres_kill_and_restart(postgres_server):
    engine = sa.create_engine(
        postgres_server.url, pool_pre_ping=True, connect_args={"connect_timeout": 1}
    )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    postgres_server.kill()
    with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    postgres_server.restart()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


@pytest.mark.redis
def test_a_chosen_port_taken_before_the_server_binds_it_is_chosen_again():
    binary = find_redis()
    if binary is None:
        missing("redis-server")
    server = RedisServer(binary)  # type: ignore[arg-type]
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        taken = squatter.getsockname()[1]
        server.port = taken  # as if another process took it between free_port() and the bind
        try:
            server.start()
            assert server.port != taken
            assert redis.Redis.from_url(server.url).ping()
        finally:
            server.close()


def test_a_port_given_by_the_test_is_never_changed():
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        taken = squatter.getsockname()[1]
        server = CommandServer(["python3", "-m", "http.server", "{port}"], port=taken)
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()
        assert server.port == taken
        server.close()


class _ProbeSocket:
    """A socket whose bind(0) gets the ports the kernel would give, in order (repeats too)."""

    given = iter(())

    def __init__(self, *_args):
        self.port = next(self.given)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return None

    def bind(self, _address):
        return None

    def getsockname(self):
        return ("127.0.0.1", self.port)


def test_free_port_never_hands_out_a_port_twice_when_the_kernel_repeats_one(monkeypatch):
    first, second = free_port(), free_port()
    assert first != second
    # The kernel gives a closed probe's port to the next bind(0): second, then first, again.
    monkeypatch.setattr(_ProbeSocket, "given", iter([second, first, *range(40000, 60000)]))
    monkeypatch.setattr(servers.socket, "socket", _ProbeSocket)
    assert free_port() not in (first, second)
