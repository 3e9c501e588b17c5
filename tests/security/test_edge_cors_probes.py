"""CORS policies validated as browsers judge them, and the probe-path matcher."""

from __future__ import annotations

import pytest

from fender.errors import ConfigurationError
from fender.security import CorsPolicy, probe_of
from fender.security._probes import PROBE_SEGMENTS
from fender.settings import load_settings


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param(
            {"origins": "*", "credentials": True}, "FENDER_CORS_CREDENTIALS", id="star-creds"
        ),
        pytest.param({"origins": "https://a.example/"}, "FENDER_CORS_ORIGINS", id="trailing-slash"),
        pytest.param({"origins": "https://a.example/app"}, "FENDER_CORS_ORIGINS", id="path"),
        pytest.param({"origins": "a.example"}, "FENDER_CORS_ORIGINS", id="no-scheme"),
        pytest.param({"origins": "null"}, "FENDER_CORS_ORIGINS", id="null"),
        pytest.param({"origins": "ftp://a.example"}, "FENDER_CORS_ORIGINS", id="scheme"),
        pytest.param({"origins": "https://*.example.com"}, "FENDER_CORS_ORIGINS", id="wildcard"),
        pytest.param({"origins": "*,https://a.example"}, "FENDER_CORS_ORIGINS", id="star-and"),
        pytest.param(
            {"origins": "https://a.example", "methods": "GET,PO ST"},
            "FENDER_CORS_METHODS",
            id="method",
        ),
        pytest.param(
            {"origins": "https://a.example", "headers": "X-A;b"}, "FENDER_CORS_HEADERS", id="header"
        ),
    ],
)
def test_a_policy_browsers_would_not_honour_fails_at_start_up(kwargs, field):
    origins = kwargs.pop("origins")
    with pytest.raises(ConfigurationError) as caught:
        CorsPolicy.parse(origins, **kwargs)
    assert caught.value.field == field


def test_settings_build_the_policy_and_empty_origins_mean_no_cors():
    assert CorsPolicy.from_settings(load_settings({}, env_file=None)) is None
    settings = load_settings(
        {"FENDER_CORS_ORIGINS": "https://App.Example:443, http://localhost:3000"}, env_file=None
    )
    policy = CorsPolicy.from_settings(settings)
    assert policy is not None
    assert policy.allows("https://app.example")
    assert policy.allows("http://localhost:3000")
    assert not policy.allows("http://localhost:3001")


def test_a_preflight_is_judged_on_origin_method_and_headers():
    policy = CorsPolicy.parse("https://a.example", methods="PUT", credentials=True, max_age=60)
    outcome, headers = policy.preflight("https://a.example", "PUT", "Content-Type, X-Request-ID")
    assert outcome == "ok"
    assert dict(headers) == {
        "access-control-allow-origin": "https://a.example",
        "vary": "Origin",
        "access-control-max-age": "60",
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "PUT",
        "access-control-allow-headers": "Authorization, Content-Type, X-Request-ID",
    }
    assert policy.preflight("https://a.example", "GET", "")[0] == "ok"  # safelisted method
    assert policy.preflight("https://a.example", "DELETE", "")[0] == "method"
    assert policy.preflight("https://a.example", "PUT", "X-Secret")[0] == "headers"
    assert policy.preflight("https://b.example", "PUT", "") == ("origin", (("vary", "Origin"),))


def test_actual_responses_echo_an_allowed_origin_and_vary_on_it():
    policy = CorsPolicy.parse("https://a.example", expose_headers="X-Request-ID")
    assert dict(policy.actual("https://a.example")) == {
        "access-control-allow-origin": "https://a.example",
        "vary": "Origin",
        "access-control-expose-headers": "X-Request-ID",
    }
    assert policy.actual("https://b.example") == (("vary", "Origin"),)
    assert policy.actual(None) == (("vary", "Origin"),)
    anyone = CorsPolicy.parse("*")
    assert anyone.actual("https://b.example") == (("access-control-allow-origin", "*"),)
    assert anyone.actual(None) == ()


def test_star_methods_and_headers_echo_what_was_asked():
    policy = CorsPolicy.parse("https://a.example", methods="*", headers="*")
    outcome, headers = policy.preflight("https://a.example", "PURGE", "X-One, x-two")
    assert outcome == "ok"
    assert ("access-control-allow-methods", "PURGE") in headers
    assert ("access-control-allow-headers", "x-one, x-two") in headers


@pytest.mark.parametrize(
    ("path", "target", "rule"),
    [
        ("/wp-admin/install.php", "", "wp-admin"),
        ("/blog/WP-LOGIN.php", "", "wp-login.php"),
        ("/.env", "", ".env"),
        ("/api/.env.production", "", ".env"),
        ("/.git/config", "", ".git"),
        ("/phpMyAdmin4.8/index.php", "", "phpmyadmin"),
        ("/xmlrpc.php", "", "xmlrpc.php"),
        ("/cgi-bin/luci", "", "cgi-bin"),
        ("/.aws/credentials", "", ".aws"),
        ("/static/../../etc/passwd", "", "traversal"),
        ("/static/x", "/static/..%2F..%2Fetc/passwd", "traversal"),
        ("/static/x", "/static/%2e%2e/%2e%2e/etc/passwd", "traversal"),
        ("/read", "/read?file=../../etc/passwd", "traversal"),
        # No "." and no "%" anywhere: only the dotless rules can match (the fast exit).
        ("/WP-Admin", "", "wp-admin"),
        ("/a/CGI-BIN", "", "cgi-bin"),
        ("/phpmyadmin2", "", "phpmyadmin"),
        ("/static/x", "/static/%2E%2E/etc", "traversal"),
        ("/read", "/read?file=..%5Cwin.ini", "traversal"),
    ],
)
def test_well_known_probes_are_recognised(path, target, rule):
    assert probe_of(path, target or path) == rule


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/items/1",
        "/environment",
        "/git/log",
        "/admin",
        "/v1.2/files/a..b",
        "/x/.well-known/a",
        "/wp-admins",
        "/cgi-bins/x",
        "/a%20b",
    ],
)
def test_ordinary_paths_are_no_probes(path):
    assert probe_of(path, path) is None


@pytest.mark.parametrize("rule", sorted(PROBE_SEGMENTS))
def test_every_probe_rule_is_seen_past_the_fast_path(rule):
    for path in (f"/{rule}", f"/app/{rule.upper()}/x"):
        assert probe_of(path, path) is not None, path
