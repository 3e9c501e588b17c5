"""REDIS_URL is checked whole when it is parsed: what redis-py would take and then fail with."""

from __future__ import annotations

import pytest

from fender.errors import ConfigurationError
from fender.redis import RedisURL, async_redis_client, parse_redis_url, redis_client
from fender.stores import _clients as client_module

SECRET = "S3cr3tPa55"


def refused(url: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        parse_redis_url(url)
    error = raised.value
    assert error.field == "REDIS_URL"
    assert error.value == f"***({len(url)} chars)"
    assert SECRET not in str(error)
    return error


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://:{SECRET}@h:notaport/0", "a port from 1 to 65535"),
        (f"redis://:{SECRET}@h:99999/0", "a port from 1 to 65535"),
        (f"redis://:{SECRET}@h:0/0", "a port from 1 to 65535"),
        (f"redis://:{SECRET}@h:6379/abc", "a database number"),
        (f"redis://:{SECRET}@h:6379/1/2", "a database number"),
        (f"redis://:pa/{SECRET}@h:6379/0", "percent-encode"),
        (f"redis://:{SECRET}#x@h:6379/0", "percent-encode"),
        (f"redis://:{SECRET}@h/0?socket_timeout=abc", "the query option socket_timeout"),
        (f"redis://:{SECRET}@h/0?health_check_interval=soon", "health_check_interval"),
        (f"rediss://:{SECRET}@h/0?ssl_cert_reqs=bogus", "valid values for its query options"),
        (f"redis://:{SECRET}@h/0?protocol=9", "valid values for its query options"),
        (f"REDIS://:{SECRET}@h/0", "a lower-case scheme"),
        (f"redis+sentinel://:{SECRET}@h1:26379,h2:x/m", "ports 1-65535"),
        (f"redis+sentinel://:{SECRET}@h1/m?socket_timeout=abc", "socket_timeout"),
        (f"redis+cluster://:{SECRET}@n1:7000?max_connections=many", "max_connections"),
    ],
)
def test_a_bad_url_names_redis_url_and_what_is_wrong(url, expected):
    assert expected in refused(url).expected


def test_an_unknown_option_is_named_by_position_not_by_text():
    # In a mangled URL the option's "name" may be a piece of the password: never echo it.
    error = refused(f"redis://:pw@h/0?db=1&{SECRET}=1")
    assert "option 2 is not one" in error.expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://h",
        "redis://h:6379/",
        "redis://h:6379/15/",
        "redis://h/0?socket_timeout=1.5&socket_connect_timeout=1&client_name=web",
        "redis://h/0?lib_name=fender",  # deprecated by redis-py, but taken
        "redis://h/0?max_connections=10&timeout=2",
        "rediss://h?ssl_cert_reqs=none&ssl_check_hostname=false",
        "unix:///run/redis.sock?db=2&socket_timeout=1",
        f"redis://:{SECRET.replace('5', '%40')}@h/0",
    ],
)
def test_good_standalone_urls_parse(url):
    assert parse_redis_url(url).kind == "standalone"


def test_sentinel_and_cluster_options_are_typed_as_redis_py_types_them():
    parsed = parse_redis_url(
        "redis+sentinel://s1/m?socket_timeout=1.5&health_check_interval=5&client_name=x"
    )
    assert parsed.options == {"socket_timeout": 1.5, "health_check_interval": 5, "client_name": "x"}
    cluster = parse_redis_url("redis+cluster://n1:7000?ssl=true&socket_keepalive=false")
    assert cluster.ssl is True
    assert cluster.options == {"socket_keepalive": False}


def test_a_sentinel_client_gets_a_number_for_a_timeout_option():
    client = redis_client("redis+sentinel://s1/m?socket_timeout=1.5", timeout=0.2)
    try:
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    finally:
        client.close()


@pytest.mark.parametrize("build", [redis_client, async_redis_client], ids=["sync", "async"])
def test_a_value_redis_py_refuses_at_build_is_a_configuration_error(monkeypatch, build):
    # Should redis-py refuse at build what parse_redis_url let through, install still names
    # REDIS_URL instead of raising redis-py's bare ValueError.
    url = f"redis://:{SECRET}@h/0?socket_timeout=abc"
    monkeypatch.setattr(
        client_module, "parse_redis_url", lambda url: RedisURL(kind="standalone", url=url)
    )
    with pytest.raises(ConfigurationError) as raised:
        build(url)
    assert raised.value.field == "REDIS_URL"
    assert SECRET not in str(raised.value)
