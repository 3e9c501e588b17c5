"""Real servers for tests: redis-server and PostgreSQL on free loopback ports, with faults.

A test that needs a server starts it itself (through the fixtures in ``conftest.py``) and may
kill it, freeze it (SIGSTOP), thaw it (SIGCONT) or restart it on the same port mid-test.
Under ``FENDER_REQUIRE_SERVICES=1`` (CI) a missing server binary fails the test instead of
skipping it.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

# Generous: a loaded CI machine may take many seconds to boot gunicorn workers or PostgreSQL,
# and a fast start returns at once.
STARTUP_TIMEOUT = 60.0
PORT_TRIES = 3
"""Starts on fresh free ports when one chosen by free_port() was taken before the server bound
it (another process's ephemeral port, in the instant between the two)."""


def require_services() -> bool:
    """True when a missing service must fail the run (CI) rather than skip the test."""
    return os.environ.get("FENDER_REQUIRE_SERVICES", "") not in ("", "0", "false")


def find_chromium() -> str:
    """The headless browser the tests drive; missing: :func:`missing` (a failure under CI)."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    missing("chromium")
    raise AssertionError  # unreachable: missing() fails or skips


def missing(what: str) -> None:
    """Fail (under CI) or skip (on a developer machine) because ``what`` is not installed."""
    message = f"{what} is not installed; `make test` installs it when run as root on Debian"
    if require_services():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


_HANDED_OUT: set[int] = set()
_HANDING_OUT = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, never the same twice in a run.

    Once a probe socket is closed the kernel may give its port to the next bind(0) again: two
    servers started together then got one port, and the readiness check of the one that lost
    the bind was answered by the other (a gunicorn retries its bind for seconds before exiting).
    """
    with _HANDING_OUT:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true, or fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not come up within {timeout}s")


def _owned_by(owner: Callable[[], object]) -> object:
    try:
        return owner()
    except RuntimeError:  # asyncio.current_task() outside a running loop
        return None


def _counting(
    original: Callable[..., Any], counts: dict[str, int], kind: str, owner: Callable[[], object]
) -> Callable[..., Any]:
    me = _owned_by(owner)
    if inspect.iscoroutinefunction(original):

        async def call_async(*args: object, **kwargs: object) -> object:
            if _owned_by(owner) == me:
                counts[kind] += 1
            return await original(*args, **kwargs)

        return call_async

    def call(*args: object, **kwargs: object) -> object:
        if _owned_by(owner) == me:
            counts[kind] += 1
        return original(*args, **kwargs)

    return call


@contextlib.contextmanager
def redis_io(owner: Callable[[], object] = threading.get_ident) -> Iterator[dict[str, int]]:
    """Count the TCP connects and the command writes of every redis-py client meanwhile.

    Sync and asyncio clients alike; only the calls made for ``owner`` count: by default the
    calling thread (pass ``asyncio.current_task`` from a coroutine), so that background probes,
    and those of earlier tests, are left out. What a test asks of this ("one write: no retry",
    "no write while the breaker is open") holds however slow the machine is, where a
    wall-clock bound on the same thing does not.
    """
    import redis.asyncio.connection
    import redis.connection

    counts = {"connect": 0, "send": 0}
    targets = [
        (module.Connection, "_connect", "connect")
        for module in (redis.connection, redis.asyncio.connection)
    ] + [
        (module.AbstractConnection, "send_packed_command", "send")
        for module in (redis.connection, redis.asyncio.connection)
    ]
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in targets]
    for cls, name, kind in targets:
        setattr(cls, name, _counting(getattr(cls, name), counts, kind, owner))
    try:
        yield counts
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


class ServerProcess(abc.ABC):
    """A server process on a fixed loopback port that tests can break and mend.

    Subclasses give the command line and a readiness probe; the fault helpers are shared.
    """

    name = "server"

    def __init__(
        self,
        port: int | None = None,
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        """Prepare (not start) a server on ``port`` (default: a free one), run as ``user``."""
        self.port = port or free_port()
        self._chose_ports = port is None
        self.user = user
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"fender-{self.name}-", suffix=".log")[1])

    @abc.abstractmethod
    def argv(self) -> Sequence[str]:
        """The command line that runs the server in the foreground."""

    def ready(self) -> bool:
        """True when the server answers its protocol."""
        return port_open(self.port)

    @property
    def pid(self) -> int:
        """PID of the running server process."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def start(self) -> None:
        """Start the server and wait until it answers.

        A port this object chose that another process took in the meantime is chosen again.
        """
        for attempt in range(1, PORT_TRIES + 1):
            try:
                self._start_once()
            except RuntimeError as exc:
                taken = "Address already in use" in str(exc)
                if not (taken and self._chose_ports) or attempt == PORT_TRIES:
                    raise
                self.choose_ports()
            else:
                return

    def choose_ports(self) -> None:
        """Choose free ports again (each port the server binds)."""
        self.port = free_port()

    def _start_once(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.argv()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.user,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # a Ctrl-C of pytest must not hit the server first
            )
        try:
            wait_for(self._alive_and_ready, STARTUP_TIMEOUT, f"{self.name} on port {self.port}")
        except TimeoutError:
            self.kill()
            message = f"{self.name} failed to start:\n{self.log.read_text()[-2000:]}"
            raise RuntimeError(message) from None

    def _alive_and_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-2000:]}")
        return self.ready()

    def kill(self) -> None:
        """SIGKILL the server (a crash: no clean shutdown) and reap it."""
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM the server (a clean shutdown) and reap it."""
        self._signal_and_wait(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung server)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop (or reap a killed) server and start it again on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a paused server cannot act on SIGTERM
            self.stop()
        wait_for(lambda: not port_open(self.port), 30.0, f"{self.name} port release")
        self.start()

    @property
    def running(self) -> bool:
        """True while the process exists (paused or not)."""
        return self.process is not None and self.process.poll() is None

    def _signal_and_wait(self, sig: signal.Signals, timeout: float = 15) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            os.kill(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The session we started (start_new_session) holds the server and its children.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def output(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        """Kill the server if running and remove its log."""
        self._signal_and_wait(signal.SIGTERM)
        self.log.unlink(missing_ok=True)


class RedisServer(ServerProcess):
    """A throwaway redis-server: no persistence, loopback only."""

    name = "redis-server"

    def __init__(self, binary: str, port: int | None = None) -> None:
        """Prepare a redis-server from ``binary``."""
        super().__init__(port)
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="fender-redis-")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> Sequence[str]:
        """redis-server in the foreground without persistence."""
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--daemonize", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        """True when PING answers PONG."""
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 0.2) as s,
        ):
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def client(self, **kwargs: object) -> object:
        """A ``redis.Redis`` client with short timeouts, so a test never hangs on a fault."""
        import redis

        options: dict[str, object] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        options.update(kwargs)
        return redis.Redis.from_url(self.url, **options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the server and remove its directory."""
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


def find_redis() -> str | None:
    """Path of redis-server, or None."""
    return shutil.which("redis-server")


def find_postgres_bin() -> Path | None:
    """The bin directory of the newest installed PostgreSQL (with postgres and initdb)."""
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


class PostgresServer(ServerProcess):
    """A throwaway PostgreSQL cluster (trust auth, fsync off) on a loopback port.

    PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` system user
    (created by Debian's package) in a data directory owned by that user.
    """

    name = "postgres"

    def __init__(self, bindir: Path, datadir: Path, port: int | None = None) -> None:
        """Prepare a server for the initialised ``datadir``."""
        user = "postgres" if os.geteuid() == 0 else None
        super().__init__(port, user=user)
        self.bindir = bindir
        self.datadir = datadir
        if user is not None:
            os.chown(self.log, pwd.getpwnam(user).pw_uid, -1)

    @classmethod
    def initdb(cls, bindir: Path) -> Path:
        """Create a new cluster in a fresh directory; return it."""
        user = "postgres" if os.geteuid() == 0 else None
        datadir = Path(tempfile.mkdtemp(prefix="fender-pg-"))
        if user is not None:
            os.chown(datadir, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
        )  # fmt: skip
        return datadir

    def copy(self) -> PostgresServer:
        """A second server on its own copy of this (stopped or running) cluster's template."""
        target = Path(tempfile.mkdtemp(prefix="fender-pg-"))
        shutil.rmtree(target)
        shutil.copytree(
            self.datadir, target, symlinks=True, ignore=shutil.ignore_patterns("postmaster.pid")
        )
        if self.user is not None:
            uid, gid = pwd.getpwnam(self.user).pw_uid, pwd.getpwnam(self.user).pw_gid
            for path in [target, *target.rglob("*")]:
                os.lchown(path, uid, gid)
        return PostgresServer(self.bindir, target)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def argv(self) -> Sequence[str]:
        """postgres in the foreground, TCP on loopback only, no unix socket."""
        return [
            str(self.bindir / "postgres"),
            "-D", str(self.datadir),
            "-p", str(self.port),
            "-h", "127.0.0.1",
            "-k", "",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip

    def ready(self) -> bool:
        """True when a query answers."""
        import psycopg

        try:
            with psycopg.connect(self.dsn(), connect_timeout=1) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def close(self) -> None:
        """Stop the server and remove its data."""
        super().close()
        shutil.rmtree(self.datadir, ignore_errors=True)


class CommandServer(ServerProcess):
    """Any HTTP server started from a command line (gunicorn, uvicorn, make demo-serve).

    Ready when ``ready_path`` answers on the port; ``{port}`` in the argv is replaced.
    """

    name = "http-server"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        ready_path: str = "/health/live",
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        """Prepare the command ``argv``."""
        # Pinned for every test server, unless a test sets them: a worker replaced after
        # max_requests (fender's default 1000) would take its in-memory state (limits, counts)
        # with it mid-test, and a /metrics rendering reused for a second (production's
        # FENDER_METRICS_CACHE_SECONDS) would show two scrapes in a row different workers' pasts.
        pinned = {"GUNICORN_MAX_REQUESTS": "0", "FENDER_METRICS_CACHE_SECONDS": "0"}
        merged = {**os.environ, **pinned, **(env or {})}
        super().__init__(port, env=merged, cwd=cwd)
        self._argv = list(argv)
        self.ready_path = ready_path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> Sequence[str]:
        """The command given."""
        return [part.replace("{port}", str(self.port)) for part in self._argv]

    def ready(self) -> bool:
        """True when ``ready_path`` answers with any HTTP status."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", self.ready_path)
            conn.getresponse().read()
        except OSError:
            return False
        finally:
            conn.close()
        return True

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (a graceful shutdown), wait, and return the exit code."""
        self._signal_and_wait(signal.SIGTERM, timeout)
        if self.process is None:
            raise RuntimeError("never started")
        return self.process.returncode


def http_ready(port: int, path: str = "/health/ready") -> Callable[[], bool]:
    """A readiness test: ``path`` answers 200 on 127.0.0.1:``port`` (not just any status)."""
    import http.client

    def ready() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
        except OSError:
            return False
        finally:
            conn.close()
        return response.status == 200

    return ready


class PrometheusServer(CommandServer):
    """Prometheus on a loopback port, ready when ``/-/ready`` answers 200 (not just any status)."""

    name = "prometheus"

    def ready(self) -> bool:
        """True once Prometheus has loaded its storage and configuration."""
        return http_ready(self.port, "/-/ready")()

    def query(self, promql: str) -> list[dict[str, object]]:
        """The result vector of an instant query."""
        import httpx

        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30)
        response.raise_for_status()
        payload = response.json()
        assert payload["status"] == "success", payload
        return payload["data"]["result"]


S = TypeVar("S", bound=CommandServer)


@contextlib.contextmanager
def serving(server: S) -> Iterator[S]:
    """Start ``server``; at the end, stop it gracefully (SIGTERM) and free what it holds."""
    server.start()
    try:
        yield server
    finally:
        server.terminate()
        server.close()


@contextlib.contextmanager
def running_prometheus(config: Path, workdir: Path) -> Iterator[PrometheusServer]:
    """A real Prometheus with ``config``, its storage under ``workdir``; stopped at the end."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        missing("prometheus (Debian package prometheus)")
    server = PrometheusServer(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            "--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        ready_path="/-/ready",
        cwd=workdir,
    )
    with serving(server):
        yield server
