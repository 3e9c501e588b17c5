"""fender doctor agrees with install on REDIS_URL and fender's paths, and checks the runtime dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender._status import Status
from fender.app import ASGI, build_runtime
from fender.doctor import diagnose
from fender.errors import ConfigurationError
from fender.redis import redis_client
from fender.settings import load_settings

SECRET = "S3cr3tPa55"
GOOD_KEY = "kq3-VZ0x8Tb2mN7pR4sW1yH6jL9cF5gDxx"
DEV = {"FENDER_ENV": "development"}


def found(environ):
    report = diagnose(environ, env_file=None)
    return report, {f.check: f for f in report.findings}


def install_error(environ) -> ConfigurationError | None:
    """What install says of ``environ``: the ConfigurationError it raises, or None."""
    try:
        settings = load_settings(environ, env_file=None)
        if settings.redis_url:
            redis_client(settings.redis_url).close()  # builds without connecting
    except ConfigurationError as error:
        return error
    return None


BAD_REDIS_URLS = [
    f"redis://u:{SECRET}@127.0.0.1:notaport/0",
    f"redis://:{SECRET}@127.0.0.1:99999/0",
    f"redis://:{SECRET}@127.0.0.1:0/0",
    f"redis://:{SECRET}@127.0.0.1:6379/abc",
    f"redis://:{SECRET}#x@127.0.0.1:6379/0",
    f"redis://:pa/{SECRET}@127.0.0.1:6379/0",
    f"redis://:{SECRET}?@127.0.0.1:6379/0",
    f"redis://:{SECRET}@127.0.0.1:6379/0?socket_timeout=abc",
    f"redis://:{SECRET}@127.0.0.1:6379/0?no_such_option=1",
    f"rediss://:{SECRET}@127.0.0.1:6379/0?ssl_cert_reqs=bogus",
    f"redis://:{SECRET}@127.0.0.1:6379/0?protocol=9",
    f"REDIS://:{SECRET}@127.0.0.1:6379/0",
    f" redis://:{SECRET}@127.0.0.1:6379/0",
    f"redis+sentinel://:{SECRET}@h1:26379,h2:x/mymaster",
    f"redis+sentinel://:{SECRET}@h1/mymaster?socket_timeout=abc",
    f"redis+cluster://:{SECRET}@n1:7000,n2:70000",
]


@pytest.mark.parametrize("url", BAD_REDIS_URLS)
def test_a_redis_url_install_refuses_fails_the_doctor(url):
    environ = {**DEV, "REDIS_URL": url}
    error = install_error(environ)
    assert error is not None
    assert error.field == "REDIS_URL"
    # Masked once: the length shown is the URL's, not that of an earlier mask.
    assert error.value == f"***({len(url)} chars)"
    assert SECRET not in str(error)
    report, by_check = found(environ)
    finding = by_check["redis_url"]
    assert finding.status is Status.FAIL
    assert finding.field == "REDIS_URL"
    assert finding.fix == f"set REDIS_URL to {error.expected}"
    assert SECRET not in repr(report)
    assert report.exit_code() == 2


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@cache:6379/0",
        f"redis://:{SECRET.replace('5', '%2F')}@cache:6379/",
        "redis://cache?socket_timeout=1.5&health_check_interval=5&client_name=web&protocol=3",
        "rediss://cache:6380/2?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=3",
        f"redis+sentinel://:{SECRET}@s1,s2:26380/mymaster/1?socket_timeout=0.5",
        "redis+cluster://n1:7000,n2:7001?ssl=true",
    ],
)
def test_a_redis_url_install_takes_passes_the_doctor(url):
    environ = {**DEV, "REDIS_URL": url}
    assert install_error(environ) is None
    report, by_check = found(environ)
    assert by_check["redis_url"].status is Status.PASS
    assert SECRET not in repr(report)


def test_no_redis_url_no_redis_check():
    _, by_check = found(DEV)
    assert "redis_url" not in by_check


PIECES = st.tuples(
    st.sampled_from(["redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "Redis"]),
    st.sampled_from(["", "u:pw@", f":{SECRET}@", f":a/{SECRET}@", f":{SECRET}#@", "tok@"]),
    st.sampled_from(["h", "h:6379", "h:0", "h:x", "h:65536", "[::1]:7000", "h1,h2:26380", "/s"]),
    st.sampled_from(["", "/", "/0", "/m", "/m/2", "/x/y/z"]),
    st.sampled_from(["", "?db=2", "?socket_timeout=x", "?socket_timeout=1", "?bad=1", "?ssl=1"]),
)


@given(pieces=PIECES)
def test_doctor_and_install_agree_on_any_redis_url(pieces):
    url = "{}://{}{}{}{}".format(*pieces)
    environ = {**DEV, "REDIS_URL": url}
    error = install_error(environ)
    report, _ = found(environ)
    failed = [f for f in report.findings if f.status is Status.FAIL]
    assert bool(failed) == (error is not None), (url, error, failed)
    if error is not None:
        assert error.field == "REDIS_URL"
        assert [f.field for f in failed] == ["REDIS_URL"]
    assert SECRET not in repr(report)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FENDER_METRICS_PATH", "/health"),
        ("FENDER_METRICS_PATH", "/status/style.css"),
        ("FENDER_HEALTH_PREFIX", "/status"),
        ("FENDER_ADMIN_TOKEN", "tökén-with-ünïcödé-and-enough-length-123456"),
    ],
)
def test_what_settings_refuse_install_and_the_doctor_refuse_alike(name, value):
    environ = {**DEV, name: value}
    with pytest.raises(ConfigurationError) as raised:
        build_runtime(load_settings(environ, env_file=None), flavour=ASGI)
    assert raised.value.field == name
    report, by_check = found(environ)
    assert by_check["settings"].field == name
    assert by_check["settings"].status is Status.FAIL
    if name == "FENDER_ADMIN_TOKEN":
        assert value not in repr(report)


# --- the runtime directory ----------------------------------------------------------------------


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


def test_a_writable_runtime_dir_passes(tmp_path):
    _, by_check = found({**DEV, "FENDER_RUNTIME_DIR": str(tmp_path)})
    finding = by_check["runtime_dir"]
    assert finding.status is Status.PASS
    assert "is writable" in finding.reason
    assert files_under(tmp_path) == []  # the probe leaves nothing behind


def test_a_runtime_dir_that_can_be_created_passes_and_is_not_created(tmp_path):
    directory = tmp_path / "run" / "fender"
    _, by_check = found({**DEV, "FENDER_RUNTIME_DIR": str(directory)})
    assert by_check["runtime_dir"].status is Status.PASS
    assert "can be created" in by_check["runtime_dir"].reason
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    ("environ", "status"),
    [(DEV, Status.WARN), ({"FENDER_ENV": "production", "SECRET_KEY": GOOD_KEY}, Status.FAIL)],
)
def test_a_runtime_dir_under_a_file_is_reported(tmp_path, environ, status):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    _, by_check = found({**environ, "FENDER_RUNTIME_DIR": str(blocker / "fender")})
    finding = by_check["runtime_dir"]
    assert finding.status is status
    assert finding.field == "FENDER_RUNTIME_DIR"
    assert f"{blocker} is not a directory" in finding.reason
    assert "drain" in finding.reason
    assert finding.fix


def test_a_runtime_dir_that_is_a_file_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    _, by_check = found({**DEV, "FENDER_RUNTIME_DIR": str(blocker)})
    assert by_check["runtime_dir"].status is Status.WARN
    assert "not a directory" in by_check["runtime_dir"].reason


def test_a_runtime_dir_that_cannot_be_created_is_reported():
    # /proc refuses new entries even to root, for whom permission bits mean nothing.
    _, by_check = found({**DEV, "FENDER_RUNTIME_DIR": "/proc/fender-doctor-test"})
    finding = by_check["runtime_dir"]
    assert finding.status is Status.WARN
    assert "cannot be created in /proc" in finding.reason
