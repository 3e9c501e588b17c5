"""``REDIS_URL``: its forms, parsed and checked without connecting.

* ``redis://[[user]:password@]host[:port][/db][?option=value...]``: TCP.
* ``rediss://...``: TCP with TLS (certificates verified).
* ``unix://[[user]:password@]/path/to/redis.sock[?db=N...]``: a Unix socket.
* ``redis+sentinel://[[user]:password@]host1[:26379][,host2[:port]...]/service[/db][?...]``:
  the master of ``service`` found through Sentinel. ``user``/``password`` authenticate to the
  master; ``?sentinel_password=...`` (and ``sentinel_username``) to the Sentinels;
  ``?ssl=true`` for TLS.
* ``redis+cluster://[[user]:password@]host1[:6379][,host2[:port]...][?ssl=true]``: Redis
  Cluster from the given startup nodes.

Other query options of the ``redis://`` forms are passed to redis-py (and win over fender's).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from fender.errors import ConfigurationError

__all__ = ["ENCODE_HINT", "RedisURL", "bad_url", "parse_redis_url"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RedisURL:
    """A parsed ``REDIS_URL`` (see :mod:`fender.stores._url` for the forms).

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
ENCODE_HINT = "(percent-encode / ? # @ : in a password: %2F %3F %23 %40 %3A)"
_PORT_MAX = 65535
# redis-py's message for an option value it cannot convert; the name is one of its own.
_INVALID_OPTION = re.compile(r"Invalid value for '(\w+)'")


def bad_url(url: str, expected: str) -> ConfigurationError:
    """The error for a bad ``REDIS_URL``: names the variable, shows the URL masked."""
    return ConfigurationError(_FIELD, url, expected, secret=True)


def _typed_options(url: str, options: dict[str, str]) -> dict[str, Any]:
    """Convert query options as redis-py converts its own URL's (``socket_timeout`` to float)."""
    import redis.connection  # parsing a REDIS_URL is start-up work: redis-py is needed then

    typed: dict[str, Any] = {}
    for name, value in options.items():
        parse = cast(
            "Callable[[str], Any] | None", redis.connection.URL_QUERY_ARGUMENT_PARSERS.get(name)
        )
        try:
            typed[name] = value if parse is None else parse(value)
        except (TypeError, ValueError):
            raise bad_url(url, f"a valid value for the query option {name}") from None
    return typed


# The connection class of each standalone scheme, by name: redis-py is imported only when a
# REDIS_URL is parsed, so that an app without Redis never loads it (9 MB, asyncio included).
_CONNECTION_CLASSES = {
    "redis": "Connection",
    "rediss": "SSLConnection",
    "unix": "UnixDomainSocketConnection",
}
# The pool's own options a URL may carry (redis-py's URL_QUERY_ARGUMENT_PARSERS converts them).
_POOL_OPTIONS = frozenset({"max_connections", "timeout"})


@functools.cache
def _accepted_options(scheme: str) -> frozenset[str]:
    """Every option a URL of ``scheme`` may carry: the keywords of its connection class."""
    import redis.connection

    names = set(_POOL_OPTIONS)
    for owner in getattr(redis.connection, _CONNECTION_CLASSES[scheme]).__mro__:
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
_NOT_MULTI_HOST_OPTIONS = frozenset({"db", "retry", "timeout"})
_SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})


def _check_standalone_options(url: str, scheme: str, query: str) -> None:
    """Build (without connecting) what redis-py builds from ``url``, so bad options fail now.

    redis-py converts option values when the pool is built, but takes unknown options and bad
    values (``ssl_cert_reqs=bogus``) only when it first connects: every call would then fail.
    """
    import redis
    import redis.connection

    try:
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=1)  # a small queue
    except ValueError as exc:
        match = _INVALID_OPTION.match(str(exc))
        name = match[1] if match else ""
        if name in redis.connection.URL_QUERY_ARGUMENT_PARSERS:
            raise bad_url(url, f"a valid value for the query option {name}") from None
        raise bad_url(url, f"a URL redis-py accepts {ENCODE_HINT}") from None
    accepted = _accepted_options(scheme)
    names = [name for name, _ in parse_qsl(query)]
    # Position, not name: in a mangled URL the "name" may be a piece of the password.
    unknown = next((i for i, name in enumerate(names, 1) if name not in accepted), None)
    if unknown is not None:
        raise bad_url(url, f"query options redis-py knows (option {unknown} is not one)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # lib_name= is only deprecated
            pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, redis.RedisError):
        raise bad_url(url, "valid values for its query options (e.g. ssl_cert_reqs)") from None


def _host_list(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in netloc.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or port.endswith("]"):  # no port, or a bare IPv6 literal
            host, port = part.strip(), str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) <= _PORT_MAX:
            raise bad_url(url, f"host[:port] entries separated by commas, ports 1-{_PORT_MAX}")
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
        raise bad_url(str(url), "a URL such as redis://localhost:6379/0")
    scheme = url.partition("://")[0].lower()
    if scheme in {"redis", "rediss", "unix"}:
        _check_standalone(url, scheme)
        return RedisURL(kind="standalone", url=url, ssl=scheme == "rediss")
    if scheme not in {"redis+sentinel", "redis+cluster"}:
        raise bad_url(
            url, "one of redis://, rediss://, unix://, redis+sentinel://, redis+cluster://"
        )
    return _parse_multi_host(url, sentinel=scheme == "redis+sentinel")


def _check_standalone(url: str, scheme: str) -> None:
    if not url.startswith(f"{scheme}://"):  # redis-py reads only a lower-case scheme
        raise bad_url(url, f"a lower-case scheme, {scheme}://")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad_url(url, f"a port from 1 to {_PORT_MAX} and a valid host {ENCODE_HINT}") from None
    if port == 0:
        raise bad_url(url, f"a port from 1 to {_PORT_MAX}")
    if scheme != "unix" and not parts.hostname:
        raise bad_url(url, f"a host, as in redis://localhost:6379/0 {ENCODE_HINT}")
    if scheme == "unix" and not parts.path:
        raise bad_url(url, "a socket path, as in unix:///run/redis.sock")
    # redis-py silently uses db 0 for a path it cannot read as a number.
    if scheme != "unix" and not re.fullmatch(r"/?(\d+/?)?", parts.path):
        raise bad_url(
            url, f"a database number as the path, as in redis://host:6379/0 {ENCODE_HINT}"
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
        raise bad_url(url, f"the database in the path, not ?db=: {form}")
    accepted = (_accepted_options("rediss") - _NOT_MULTI_HOST_OPTIONS) | (
        _SENTINEL_OPTIONS if sentinel else frozenset()
    )
    names = [name for name, _ in parse_qsl(query) if name != "ssl"]
    unknown = next((i for i, name in enumerate(names, 1) if name not in accepted), None)
    if unknown is not None:  # by position: see _check_standalone_options
        raise bad_url(url, f"connection options redis-py knows (option {unknown} is not one)")
    # Typed as redis-py types them: passed on as strings, "socket_timeout=1" broke every call.
    options = _typed_options(url, raw_options)
    segments = [segment for segment in path.split("/") if segment]
    if not sentinel:
        if segments:
            raise bad_url(url, "redis+cluster://host[:port][,host...] (a cluster has only db 0)")
        return RedisURL(
            kind="cluster", url=url, hosts=_host_list(netloc, 6379, url), username=username,
            password=password, ssl=ssl, options=options,
        )  # fmt: skip
    service, db = [*segments, ""][0], (segments[1:] or ["0"])[0]
    if not service or len(segments) > 2 or not db.isdigit():  # noqa: PLR2004  (service and db)
        raise bad_url(url, "redis+sentinel://host[:port][,host...]/service[/db]")
    return RedisURL(
        kind="sentinel", url=url, hosts=_host_list(netloc, 26379, url), service=unquote(service),
        db=int(db), username=username, password=password, ssl=ssl, options=options,
    )  # fmt: skip
