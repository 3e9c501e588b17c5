"""Redis clients with explicit, short limits, from ``REDIS_URL``.

Connect and read timeouts from ``NETWORK_TIMEOUT_SEC`` (0.5 s by default; sub-second values are
fine), a bounded connection pool that waits a short time for a free connection, TCP keepalive,
a health check of idle connections, and **no retries**: redis-py 8's defaults retry ten times
with backoff, which costs seconds per call against a dead server and close to a minute against a
hung one; a retry inside a request only delays the breaker's verdict. The URL forms accepted
are listed in :mod:`fender.stores.redis`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
from redis.maint_notifications import MaintNotificationsConfig

from fender.errors import ConfigurationError

__all__ = [
    "RedisURL",
    "async_redis_client",
    "is_cluster",
    "parse_redis_url",
    "redis_client",
    "seconds_ok",
]


def seconds_ok(value: object, *, allow_zero: bool = False) -> bool:
    """True for a finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RedisURL:
    """A parsed ``REDIS_URL`` (see the module docstring for the forms).

    The password is kept out of ``repr``.
    """

    kind: Literal["standalone", "sentinel", "cluster"]
    url: str = dataclasses.field(repr=False)
    """The URL as given (``redis://``, ``rediss://`` and ``unix://`` go to redis-py as is)."""
    hosts: tuple[tuple[str, int], ...] = ()
    """Sentinel or cluster startup nodes."""
    service: str = ""
    """The Sentinel service (master group) name."""
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    ssl: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    """The remaining query options, typed as redis-py types them (``socket_timeout``: float)."""


_TRUE = frozenset({"1", "true", "yes", "on"})
# Errors name the variable a user sets; the URL is shown masked (it may hold a password).
_FIELD = "REDIS_URL"
# The usual cause of a URL that does not parse: a password with / ? # @ not percent-encoded.
_ENCODE_HINT = "(percent-encode / ? # @ : in a password: %2F %3F %23 %40 %3A)"
_PORT_MAX = 65535
# redis-py's message for an option value it cannot convert; the name is one of its own.
_INVALID_OPTION = re.compile(r"Invalid value for '(\w+)'")


def _bad_url(url: str, expected: str) -> ConfigurationError:
    return ConfigurationError(_FIELD, url, expected, secret=True)


def _typed_options(url: str, options: dict[str, str]) -> dict[str, Any]:
    """Convert query options as redis-py converts its own URL's (``socket_timeout`` to float)."""
    typed: dict[str, Any] = {}
    for name, value in options.items():
        parse = cast(
            "Callable[[str], Any] | None", redis.connection.URL_QUERY_ARGUMENT_PARSERS.get(name)
        )
        try:
            typed[name] = value if parse is None else parse(value)
        except (TypeError, ValueError):
            raise _bad_url(url, f"a valid value for the query option {name}") from None
    return typed


_CONNECTION_CLASSES: dict[str, type[Any]] = {
    "redis": redis.connection.Connection,
    "rediss": redis.connection.SSLConnection,
    "unix": redis.connection.UnixDomainSocketConnection,
}
# The pool's own options a URL may carry (redis-py's URL_QUERY_ARGUMENT_PARSERS converts them).
_POOL_OPTIONS = frozenset({"max_connections", "timeout"})


@functools.cache
def _accepted_options(scheme: str) -> frozenset[str]:
    """Every option a URL of ``scheme`` may carry: the keywords of its connection class."""
    names = set(_POOL_OPTIONS)
    for owner in _CONNECTION_CLASSES[scheme].__mro__:
        init = owner.__dict__.get("__init__")
        if init is not None:
            names.update(
                name
                for name, parameter in inspect.signature(init).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY
                or parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            )
    names.discard("self")
    return frozenset(names)


# Query options of the Sentinel and Cluster forms: the connections' (TLS ones included), less
# those fender sets itself or that would clash with its own arguments.
_MULTI_HOST_OPTIONS = _accepted_options("rediss") - {"db", "retry", "timeout"}
_SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})


def _check_standalone_options(url: str, scheme: str, query: str) -> None:
    """Build (without connecting) what redis-py builds from ``url``, so bad options fail now.

    redis-py converts option values when the pool is built, but takes unknown options and bad
    values (``ssl_cert_reqs=bogus``) only when it first connects: every call would then fail.
    """
    try:
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=1)  # a small queue
    except ValueError as exc:
        match = _INVALID_OPTION.match(str(exc))
        name = match[1] if match else ""
        if name in redis.connection.URL_QUERY_ARGUMENT_PARSERS:
            raise _bad_url(url, f"a valid value for the query option {name}") from None
        raise _bad_url(url, f"a URL redis-py accepts {_ENCODE_HINT}") from None
    accepted = _accepted_options(scheme)
    names = [name for name, _ in parse_qsl(query)]
    # Position, not name: in a mangled URL the "name" may be a piece of the password.
    unknown = next((i for i, name in enumerate(names, 1) if name not in accepted), None)
    if unknown is not None:
        raise _bad_url(url, f"query options redis-py knows (option {unknown} is not one)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # lib_name= is only deprecated
            pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, redis.RedisError):
        raise _bad_url(url, "valid values for its query options (e.g. ssl_cert_reqs)") from None


def _host_list(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in netloc.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or port.endswith("]"):  # no port, or a bare IPv6 literal
            host, port = part.strip(), str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) <= _PORT_MAX:
            raise _bad_url(url, f"host[:port] entries separated by commas, ports 1-{_PORT_MAX}")
        hosts.append((host, int(port)))
    return tuple(hosts)


def parse_redis_url(url: str) -> RedisURL:
    """Parse ``REDIS_URL``; raise :class:`~fender.errors.ConfigurationError` naming it if bad.

    Everything a client build would refuse, or would take and fail with on every call, is
    refused here without connecting: hosts and ports, the database number, query options and
    their values. ``fender doctor`` runs this same function.

    Example:
        >>> parse_redis_url("redis+sentinel://:pw@s1,s2:26380/mymaster/2").hosts
        (('s1', 26379), ('s2', 26380))
    """
    if not isinstance(url, str) or "://" not in url:
        raise _bad_url(str(url), "a URL such as redis://localhost:6379/0")
    scheme = url.partition("://")[0].lower()
    if scheme in {"redis", "rediss", "unix"}:
        _check_standalone(url, scheme)
        return RedisURL(kind="standalone", url=url, ssl=scheme == "rediss")
    if scheme not in {"redis+sentinel", "redis+cluster"}:
        raise _bad_url(
            url, "one of redis://, rediss://, unix://, redis+sentinel://, redis+cluster://"
        )
    return _parse_multi_host(url, sentinel=scheme == "redis+sentinel")


def _check_standalone(url: str, scheme: str) -> None:
    if not url.startswith(f"{scheme}://"):  # redis-py reads only a lower-case scheme
        raise _bad_url(url, f"a lower-case scheme, {scheme}://")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _bad_url(
            url, f"a port from 1 to {_PORT_MAX} and a valid host {_ENCODE_HINT}"
        ) from None
    if port == 0:
        raise _bad_url(url, f"a port from 1 to {_PORT_MAX}")
    if scheme != "unix" and not parts.hostname:
        raise _bad_url(url, f"a host, as in redis://localhost:6379/0 {_ENCODE_HINT}")
    if scheme == "unix" and not parts.path:
        raise _bad_url(url, "a socket path, as in unix:///run/redis.sock")
    # redis-py silently uses db 0 for a path it cannot read as a number.
    if scheme != "unix" and not re.fullmatch(r"/?(\d+/?)?", parts.path):
        raise _bad_url(
            url, f"a database number as the path, as in redis://host:6379/0 {_ENCODE_HINT}"
        )
    _check_standalone_options(url, scheme, parts.query)


def _parse_multi_host(url: str, *, sentinel: bool) -> RedisURL:
    """Parse the Sentinel and Cluster forms, whose host lists urllib cannot read."""
    rest, _, query = url.partition("://")[2].partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, netloc = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    raw_options = dict(parse_qsl(query))
    ssl = raw_options.pop("ssl", "").lower() in _TRUE
    form = "redis+sentinel://host/service/db" if sentinel else "redis+cluster:// (db 0 only)"
    if "db" in raw_options:
        raise _bad_url(url, f"the database in the path, not ?db=: {form}")
    accepted = _MULTI_HOST_OPTIONS | (_SENTINEL_OPTIONS if sentinel else frozenset())
    names = [name for name, _ in parse_qsl(query) if name != "ssl"]
    unknown = next((i for i, name in enumerate(names, 1) if name not in accepted), None)
    if unknown is not None:  # by position: see _check_standalone_options
        raise _bad_url(url, f"connection options redis-py knows (option {unknown} is not one)")
    # Typed as redis-py types them: passed on as strings, "socket_timeout=1" broke every call.
    options = _typed_options(url, raw_options)
    segments = [segment for segment in path.split("/") if segment]
    if not sentinel:
        if segments:
            raise _bad_url(url, "redis+cluster://host[:port][,host...] (a cluster has only db 0)")
        return RedisURL(
            kind="cluster", url=url, hosts=_host_list(netloc, 6379, url), username=username,
            password=password, ssl=ssl, options=options,
        )  # fmt: skip
    service, db = [*segments, ""][0], (segments[1:] or ["0"])[0]
    if not service or len(segments) > 2 or not db.isdigit():  # noqa: PLR2004  (service and db)
        raise _bad_url(url, "redis+sentinel://host[:port][,host...]/service[/db]")
    return RedisURL(
        kind="sentinel", url=url, hosts=_host_list(netloc, 26379, url), service=unquote(service),
        db=int(db), username=username, password=password, ssl=ssl, options=options,
    )  # fmt: skip


def _check_limits(timeout: float, max_connections: int, pool_timeout: float | None) -> None:
    if not seconds_ok(timeout):
        raise ConfigurationError("network_timeout_sec", timeout, "seconds > 0")
    if not isinstance(max_connections, int) or isinstance(max_connections, bool):
        raise ConfigurationError("max_connections", max_connections, "an integer >= 1")
    if max_connections < 1:
        raise ConfigurationError("max_connections", max_connections, "an integer >= 1")
    if pool_timeout is not None and not seconds_ok(pool_timeout):
        raise ConfigurationError("pool_timeout", pool_timeout, "seconds > 0 or None")


class _SentinelPool(redis.sentinel.SentinelConnectionPool):
    """The master's pool; closing it also closes the connections to the Sentinels.

    redis-py leaves those open when the master's client is closed (a leaked socket per
    Sentinel asked).
    """

    def disconnect(self, inuse_connections: bool = True) -> None:  # noqa: FBT001, FBT002  (redis-py's signature)
        """Close the master's connections and the Sentinels'."""
        super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect()


class _AsyncSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool):
    """:class:`_SentinelPool` for ``redis.asyncio``."""

    async def disconnect(self, inuse_connections: bool = True) -> None:  # noqa: FBT001, FBT002  (redis-py's signature)
        """Close the master's connections and the Sentinels'."""
        await super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.connection_pool.disconnect()


_SENTINEL_POOLS: dict[str, type[Any]] = {
    "redis": _SentinelPool,
    "redis.asyncio": _AsyncSentinelPool,
}


def _build(
    api: types.ModuleType,
    url: str,
    *,
    timeout: float,
    max_connections: int,
    pool_timeout: float | None,
    health_check_interval: int,
    options: dict[str, Any],
) -> Any:
    """Build a client from ``api`` (``redis`` or ``redis.asyncio``): one recipe for both."""
    _check_limits(timeout, max_connections, pool_timeout)
    parsed = parse_redis_url(url)
    no_retry = api.retry.Retry(redis.backoff.NoBackoff(), 0)
    socket_options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # A new connection costs one round trip (HELLO), not four: no CLIENT SETINFO (two
        # commands) and no maintenance-notification handshake, which matter when a reconnect
        # must fit in a call's budget (the rate limiter's is 50 ms).
        "driver_info": None,
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    if parsed.kind == "standalone":
        if not url.lower().startswith("unix:"):
            socket_options["socket_keepalive"] = True  # a Unix socket has no TCP keepalive
        try:
            pool = api.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout if pool_timeout is None else pool_timeout,
                health_check_interval=health_check_interval,
                retry=no_retry,
                **{**socket_options, **options},
            )
        except ValueError:  # parse_redis_url checked the URL: this is a bad keyword option
            raise _bad_url(url, f"a URL redis-py accepts {_ENCODE_HINT}") from None
        return api.Redis.from_pool(pool)  # the client owns the pool: close() closes both
    socket_options["socket_keepalive"] = True
    common: dict[str, Any] = {
        **socket_options,
        "username": parsed.username,
        "password": parsed.password,
        "ssl": parsed.ssl,
        "health_check_interval": health_check_interval,
        "max_connections": max_connections,
        **parsed.options,
        **options,
    }
    if parsed.kind == "sentinel":
        sentinel_kwargs = {
            **socket_options,
            "retry": no_retry,
            "ssl": parsed.ssl,
            "username": common.pop("sentinel_username", None),
            "password": common.pop("sentinel_password", None),
        }
        sentinel = api.sentinel.Sentinel(
            list(parsed.hosts), sentinel_kwargs=sentinel_kwargs, retry=no_retry
        )
        return sentinel.master_for(
            parsed.service,
            db=parsed.db,
            connection_pool_class=_SENTINEL_POOLS[api.__name__],
            **common,
        )
    nodes = [api.cluster.ClusterNode(host, port) for host, port in parsed.hosts]
    if api is redis:
        # The sync cluster client connects (and reads the slot map) when it is built: a
        # cluster that is down at boot would crash the app instead of degrading. Build it
        # on first use instead; until then every call fails like a dead server.
        return _LazyCluster(
            lambda: api.cluster.RedisCluster(startup_nodes=nodes, retry=no_retry, **common)
        )
    return api.cluster.RedisCluster(startup_nodes=nodes, retry=no_retry, **common)


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (sync, asyncio, or the lazy one above), unconnected."""
    return isinstance(
        client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster | _LazyCluster
    )


class _LazyCluster:
    """A sync ``RedisCluster`` built on first use; a failed build is a ConnectionError."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()

    def _connected(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._build()
                    except redis.RedisError:
                        raise
                    except Exception as exc:  # redis-py raises plain errors for no nodes
                        raise redis.ConnectionError(f"cluster unreachable: {exc}") from exc
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connected(), name)

    def close(self) -> None:
        """Close the client if it was ever built."""
        if self._client is not None:
            self._client.close()


def redis_client(
    url: str,
    *,
    timeout: float = 0.5,
    max_connections: int = 50,
    pool_timeout: float | None = None,
    health_check_interval: int = 30,
    **options: Any,
) -> redis.Redis | redis.RedisCluster:
    """A sync redis-py client for ``url`` with safe limits and no retries.

    Args:
        url: Any form in the module docstring.
        timeout: Connect and read timeout in seconds (``NETWORK_TIMEOUT_SEC``).
        max_connections: Pool size; a caller waits ``pool_timeout`` for a free connection,
            then fails (a ``ConnectionError`` the breaker counts).
        pool_timeout: Seconds to wait for a free connection (default: ``timeout``).
        health_check_interval: Seconds of idleness after which a connection is PINGed
            before use, so a connection cut by a proxy fails fast and is replaced.
        options: More redis-py connection options (e.g. ``client_name``).

    Raises:
        ConfigurationError: The URL or a limit is invalid.
    """
    import redis.cluster

    client = _build(
        redis, url, timeout=timeout, max_connections=max_connections,
        pool_timeout=pool_timeout, health_check_interval=health_check_interval, options=options,
    )  # fmt: skip
    return cast("redis.Redis | redis.RedisCluster", client)


def async_redis_client(
    url: str,
    *,
    timeout: float = 0.5,
    max_connections: int = 50,
    pool_timeout: float | None = None,
    health_check_interval: int = 30,
    **options: Any,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """A ``redis.asyncio`` client for ``url``; same arguments as :func:`redis_client`."""
    import redis.asyncio.cluster
    import redis.asyncio.retry

    client = _build(
        redis.asyncio, url, timeout=timeout, max_connections=max_connections,
        pool_timeout=pool_timeout, health_check_interval=health_check_interval, options=options,
    )  # fmt: skip
    return cast("redis.asyncio.Redis | redis.asyncio.RedisCluster", client)
