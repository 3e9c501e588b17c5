"""redis-py clients with explicit, short limits, built from ``REDIS_URL``, and closed fully.

Connect and read timeouts from ``NETWORK_TIMEOUT_SEC`` (0.5 s by default; sub-second values are
fine), a bounded connection pool that waits a short time for a free connection, TCP keepalive,
a health check of idle connections, and **no retries**: redis-py 8's defaults retry ten times
with backoff, which costs seconds per call against a dead server and close to a minute against a
hung one; a retry inside a request only delays the breaker's verdict. The URL forms accepted
are listed in :mod:`fender.stores._url`; the sync cluster client connects only when first used.

:func:`aclose_client` closes a ``redis.asyncio`` client so that every connection is closed, a
cluster's included. redis-py 8.1's asyncio ``RedisCluster`` marks itself for re-initialisation
after a connection error (``_initialize``: "read the slot map again before the next command"),
and its ``aclose()`` does nothing while that flag is set. A cluster client closed after it lost
a node (the moment a service shuts down in an outage) would leave its connections to the
surviving nodes open, for the garbage collector to find (``ResourceWarning: unclosed
ClusterNode``).
"""

from __future__ import annotations

import math
import threading
import types
from collections.abc import Callable
from typing import Any, cast

from fender.errors import ConfigurationError
from fender.stores._url import ENCODE_HINT, bad_url, parse_redis_url

# redis-py (9 MB and asyncio with it) is imported where a client is built or closed, never
# here: every app imports this module, and one without REDIS_URL never needs redis-py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "aclose_client",
    "async_redis_client",
    "is_cluster",
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


def _check_limits(timeout: float, max_connections: int, pool_timeout: float | None) -> None:
    if not seconds_ok(timeout):
        raise ConfigurationError("network_timeout_sec", timeout, "seconds > 0")
    if not isinstance(max_connections, int) or isinstance(max_connections, bool):
        raise ConfigurationError("max_connections", max_connections, "an integer >= 1")
    if max_connections < 1:
        raise ConfigurationError("max_connections", max_connections, "an integer >= 1")
    if pool_timeout is not None and not seconds_ok(pool_timeout):
        raise ConfigurationError("pool_timeout", pool_timeout, "seconds > 0 or None")


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
    import redis.backoff
    from redis.maint_notifications import MaintNotificationsConfig

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
            raise bad_url(url, f"a URL redis-py accepts {ENCODE_HINT}") from None
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
        from fender.stores._sentinel import SENTINEL_POOLS

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
            connection_pool_class=SENTINEL_POOLS[api.__name__],
            **common,
        )
    nodes = [api.cluster.ClusterNode(host, port) for host, port in parsed.hosts]
    if api.__name__ == "redis":
        # The sync cluster client connects (and reads the slot map) when it is built: a
        # cluster that is down at boot would crash the app instead of degrading. Build it
        # on first use instead; until then every call fails like a dead server.
        return _LazyCluster(
            lambda: api.cluster.RedisCluster(startup_nodes=nodes, retry=no_retry, **common)
        )
    return api.cluster.RedisCluster(startup_nodes=nodes, retry=no_retry, **common)


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (sync, asyncio, or the lazy one above), unconnected."""
    if client is None or isinstance(client, _LazyCluster):
        return client is not None
    # A client exists, so redis-py is loaded: these imports only look it up.
    import redis.asyncio.cluster
    import redis.cluster

    return isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


class _LazyCluster:
    """A sync ``RedisCluster`` built on first use; a failed build is a ConnectionError."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()

    def _connected(self) -> Any:
        client = self._client
        if client is None:
            import redis

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
        url: Any form of :mod:`fender.stores._url`.
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
    import redis
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
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.retry

    client = _build(
        redis.asyncio, url, timeout=timeout, max_connections=max_connections,
        pool_timeout=pool_timeout, health_check_interval=health_check_interval, options=options,
    )  # fmt: skip
    return cast("redis.asyncio.Redis | redis.asyncio.RedisCluster", client)


async def aclose_client(client: Any) -> None:
    """Close ``client`` (any ``redis.asyncio`` client) and every connection it holds.

    On a cluster it also closes the node manager's connections, the nodes of the slot map and
    the startup nodes, as ``RedisCluster.aclose()`` itself does when its re-initialisation flag
    is clear (closing a closed node again is a no-op). Errors of the client's own ``aclose()``
    propagate, after the cluster's nodes are closed.
    """
    import redis.asyncio.cluster  # a client exists: redis-py is loaded already

    try:
        await client.aclose()
    finally:
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            manager = client.nodes_manager
            try:
                await manager.aclose()
            finally:
                await manager.aclose("startup_nodes")
