"""The CSP builder, HSTS options, the compiled header lists and the cookie rules (pure)."""

from __future__ import annotations

import doctest
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender.errors import ConfigurationError
from fender.http import headers as http_headers
from fender.http.headers import asgi_headers, is_https, wsgi_headers
from fender.security import (
    CSP,
    HSTS,
    CookiePolicy,
    SecurityHeaders,
    _cookies,
    _csp,
    _headers,
    _hsts,
    host_cookie,
    parse_csp,
    security_headers,
)
from fender.settings import load_settings

# The defaults, word for word (helmet 8).
HELMET_CSP = (
    "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; "
    "frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; "
    "script-src-attr 'none'; style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests"
)
HELMET_OTHERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-frame-options": "SAMEORIGIN",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
    "browsing-topics=()",
}
HSTS_DEFAULT = "max-age=31536000; includeSubDomains"


def settings(**env: str) -> Any:
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


# --- the malformed-input table -------------------------------------------------------------

# (what is built, the directive or option the error must name, a valid equivalent)
MALFORMED = [
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": 5}),
        "script-src",
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'self'"}),
        id="int",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": b"'self'"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "'self'"}),
        id="bytes",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "img-src": ["'self'", ["data:"]]}),
        "img-src",
        lambda: CSP.from_dict({"default-src": "'self'", "img-src": ["'self'", "data:"]}),
        id="nested-list",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "style-src": False}),
        "style-src",
        lambda: CSP.from_dict({"default-src": "'self'", "style-src": None}),
        id="false-instead-of-none",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'self' unsafe-inline"}),
        "script-src",
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'self' 'unsafe-inline'"}),
        id="plain-string-with-spaces-and-a-bare-keyword",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "self"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "'self'"}),
        id="unquoted-self",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "nonce-abc123"}),
        "script-src",
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'nonce-abc123'"}),
        id="unquoted-nonce",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'; script-src *"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "*"}),
        id="semicolon-injection",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": ["'self'", "https://a.example, https://b"]}),
        "default-src",
        lambda: CSP.from_dict({"default-src": ["'self'", "https://a.example", "https://b"]}),
        id="comma",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'\r\nSet-Cookie: x=1"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "'self'"}),
        id="crlf",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'\n"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "'self' "}),
        id="lf",
    ),
    pytest.param(
        lambda: CSP.parse("default-src 'self'; script-src 'self'; script-src *"),
        "script-src",
        lambda: CSP.parse("default-src 'self'; script-src 'self' *"),
        id="duplicate-in-a-header",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "*", "script_src": "*"}),
        "script-src",
        lambda: CSP.from_dict({"default-src": "'self'", "script_src": "*"}),
        id="duplicate-in-a-dict",
    ),
    pytest.param(
        lambda: CSP().directive("default-src", CSP.SELF).directive("default-src", CSP.NONE),
        "default-src",
        lambda: CSP().directive("default-src", CSP.SELF).override({"default-src": CSP.NONE}),
        id="duplicate-fluent",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-scr": "'self'"}),
        "script-scr",
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'self'"}),
        id="unknown-directive",
    ),
    pytest.param(
        lambda: CSP.from_dict({"script-src": "'self'"}),
        "default-src",
        lambda: CSP.from_dict({"script-src": "'self'"}, allow_missing_default_src=True),
        id="missing-default-src",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'none' 'self'"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "'none'"}),
        id="none-with-others",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "frame-ancestors": CSP.NONCE}),
        "frame-ancestors",
        lambda: CSP.from_dict({"default-src": "'self'", "frame-ancestors": "'self'"}),
        id="nonce-where-it-means-nothing",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'selfie'"}),
        "script-src",
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": "'self'"}),
        id="unknown-keyword",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "img-src": ""}),
        "img-src",
        lambda: CSP.from_dict({"default-src": "'self'", "img-src": "'none'"}),
        id="empty",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "upgrade-insecure-requests": "yes"}),
        "upgrade-insecure-requests",
        lambda: CSP.from_dict({"default-src": "'self'", "upgrade-insecure-requests": True}),
        id="value-on-a-flag",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "script-src": True}),
        "script-src",
        lambda: CSP.from_dict({"default-src": "'self'", "sandbox": True}),
        id="true-on-a-source-list",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "'self'", "sandbox": "allow-script"}),
        "sandbox",
        lambda: CSP.from_dict({"default-src": "'self'", "sandbox": "allow-scripts"}),
        id="sandbox-typo",
    ),
    pytest.param(
        lambda: CSP.from_dict({"default-src": "https://bücher.example"}),
        "default-src",
        lambda: CSP.from_dict({"default-src": "https://xn--bcher-kva.example"}),
        id="non-ascii-host",
    ),
    pytest.param(
        lambda: CSP().directive("default-src", CSP.SELF).report_to("CSP group", "/r"),
        "report-to",
        lambda: CSP().directive("default-src", CSP.SELF).report_to("csp", "/r"),
        id="report-group",
    ),
    pytest.param(
        lambda: HSTS(max_age=31536000, include_subdomain=True),
        "include_subdomain",
        lambda: HSTS(max_age=31536000, include_subdomains=True),
        id="hsts-keyword-typo",
    ),
    pytest.param(
        lambda: HSTS.parse("max-age=31536000; includeSubdomain"),
        "hsts",
        lambda: HSTS.parse("max-age=31536000; includeSubDomains"),
        id="hsts-header-typo",
    ),
    pytest.param(
        lambda: HSTS(max_age=86400, preload=True),
        "preload",
        lambda: HSTS(max_age=31536000, preload=True),
        id="hsts-preload-too-short",
    ),
    pytest.param(
        lambda: HSTS(include_subdomains=False, preload=True),
        "preload",
        lambda: HSTS(include_subdomains=True, preload=True),
        id="hsts-preload-without-subdomains",
    ),
    pytest.param(
        lambda: HSTS(max_age="1 year"),
        "max_age",
        lambda: HSTS(max_age=31536000),
        id="hsts-max-age-type",
    ),
    pytest.param(
        lambda: SecurityHeaders.from_settings(settings(FENDER_CSP="default-src 'self' self")),
        "FENDER_CSP.default-src",
        lambda: SecurityHeaders.from_settings(settings(FENDER_CSP="default-src 'self'")),
        id="FENDER_CSP",
    ),
    pytest.param(
        lambda: SecurityHeaders.from_settings(
            settings(FENDER_HSTS_PRELOAD="true", FENDER_HSTS_MAX_AGE="600")
        ),
        "FENDER_HSTS.preload",
        lambda: SecurityHeaders.from_settings(settings(FENDER_HSTS_PRELOAD="true")),
        id="FENDER_HSTS_PRELOAD",
    ),
    pytest.param(
        lambda: SecurityHeaders(headers={"X-Frame-Options": "DENY\r\nX-Evil: 1"}),
        "X-Frame-Options",
        lambda: SecurityHeaders(headers={"X-Frame-Options": "DENY"}),
        id="header-crlf",
    ),
    pytest.param(
        lambda: SecurityHeaders(headers={"Content-Security-Policy": "default-src *"}),
        "Content-Security-Policy",
        lambda: SecurityHeaders(csp="default-src *"),
        id="csp-as-a-plain-header",
    ),
    pytest.param(
        lambda: security_headers(csp={"default-src": None, "script-src": "'self'"}),
        "default-src",
        lambda: security_headers(csp={"default-src": "'self'", "script-src": "'self'"}),
        id="route-override",
    ),
]


@pytest.mark.parametrize(("build", "names", "valid"), MALFORMED)
def test_each_malformed_input_raises_at_build_time_naming_the_directive(build, names, valid):
    with pytest.raises(ConfigurationError) as raised:
        build()
    assert names in str(raised.value)
    assert names in raised.value.field
    valid()


def test_none_at_the_top_level_is_no_policy_and_none_in_a_directive_removes_it():
    with pytest.raises(ConfigurationError, match="csp"):
        CSP.from_dict(None)  # type: ignore[arg-type]
    assert SecurityHeaders(csp=None).csp is None
    policy = CSP.web().override({"script-src-attr": None, "style-src": None})
    assert "script-src-attr" not in policy.directives
    assert "style-src" not in policy.directives
    assert CSP.from_dict({"default-src": "'self'", "img-src": None}).directives == {
        "default-src": ("'self'",)
    }


@pytest.mark.parametrize(
    ("value", "suggestion"),
    [
        ("self", "'self'"),
        ("none", "'none'"),
        ("unsafe-inline", "'unsafe-inline'"),
        ("unsafe-eval", "'unsafe-eval'"),
        ("strict-dynamic", "'strict-dynamic'"),
        ("unsafe-hashes", "'unsafe-hashes'"),
        ("wasm-unsafe-eval", "'wasm-unsafe-eval'"),
        ("report-sample", "'report-sample'"),
        ("SELF", "'self'"),
        ('"self"', "'self'"),
        ("'self", "'self'"),
        ("nonce-R4nd0m", "'nonce-R4nd0m'"),
        ("sha256-abc=", "'sha256-abc='"),
        ("sha512-abc", "'sha512-abc'"),
    ],
)
def test_a_bare_keyword_says_what_was_meant(value, suggestion):
    with pytest.raises(ConfigurationError, match=f'did you mean "{suggestion}"'):
        CSP.from_dict({"default-src": "'self'", "script-src": value})


def test_keywords_are_normalised_and_sources_deduplicated():
    policy = CSP.from_dict({"default-src": "'SELF' HTTPS: 'self' https:"})
    assert policy.directives == {"default-src": ("'self'", "https:")}


# --- serialization and parsing -------------------------------------------------------------


def test_the_web_profile_is_helmets_policy_word_for_word():
    assert CSP.web().header_value() == HELMET_CSP
    assert parse_csp(HELMET_CSP) == CSP.web().directives
    assert CSP.parse(HELMET_CSP) == CSP.web()


def test_the_api_profile():
    assert CSP.api().header_value() == "default-src 'none'; frame-ancestors 'none'"


def test_report_to_gives_the_directive_and_the_reporting_endpoint():
    policy = CSP.web().report_to("csp", "https://r.example/csp").override({"report-uri": "/r"})
    assert policy.directives["report-to"] == ("csp",)
    assert policy.directives["report-uri"] == ("/r",)
    assert policy.reporting_endpoints == 'csp="https://r.example/csp"'
    # Again: the group is replaced, not added.
    again = policy.report_to("other", "https://r.example/2")
    assert again.directives["report-to"] == ("other",)
    assert again.reporting_endpoints == 'other="https://r.example/2"'


_B64 = st.text(string.ascii_letters + string.digits + "+/_-", min_size=1, max_size=30)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_HOST = st.builds(
    lambda scheme, wildcard, labels, port, path: (
        f"{scheme}{'*.' if wildcard else ''}{'.'.join(labels)}{port}{path}"
    ),
    st.sampled_from(["", "https://", "wss://", "http://"]),
    st.booleans(),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.sampled_from(["", ":443", ":*", ":8080"]),
    st.sampled_from(["", "/", "/static/", "/a/b.js", "/%20x"]),
)
_SOURCE = st.one_of(
    st.sampled_from(
        [
            "'self'",
            "'unsafe-inline'",
            "'unsafe-eval'",
            "'strict-dynamic'",
            "'unsafe-hashes'",
            "'report-sample'",
            "'wasm-unsafe-eval'",
            "*",
            "https:",
            "data:",
            "blob:",
            CSP.NONCE,
        ]
    ),
    _B64.map(lambda b: f"'nonce-{b}'"),
    st.tuples(st.sampled_from(["256", "384", "512"]), _B64).map(lambda p: f"'sha{p[0]}-{p[1]}'"),
    _HOST,
)
_FETCH = [name for name, kind in _csp.DIRECTIVES.items() if kind == "fetch"]
_VALUE = st.one_of(
    st.lists(_SOURCE, min_size=1, max_size=4),
    st.lists(_SOURCE, min_size=1, max_size=4).map(" ".join),
    st.just("'none'"),
)


@given(
    st.dictionaries(st.sampled_from(_FETCH), _VALUE, min_size=1),
    st.booleans(),
    st.booleans(),
)
def test_any_policy_the_builder_accepts_round_trips_through_its_header(fetch, upgrade, sandbox):
    directives: dict[str, object] = {"default-src": "'self'", **fetch}
    if upgrade:
        directives["upgrade-insecure-requests"] = True
    if sandbox:
        directives["sandbox"] = "allow-scripts allow-forms"
    policy = CSP.from_dict(directives)
    header = policy.header_value()
    assert parse_csp(header) == policy.directives
    assert CSP.parse(header) == policy
    for char in ",\r\n":
        assert char not in header


@given(st.text(max_size=40), st.sampled_from(["script-src", "frame-ancestors", "report-uri"]))
def test_any_text_is_refused_or_round_trips(value, directive):
    try:
        policy = CSP.from_dict({"default-src": "'self'", directive: value})
    except ConfigurationError as exc:
        refused: ConfigurationError | None = exc
    else:
        refused = None
    if refused is not None:
        assert directive in refused.field
        return
    header = policy.header_value()
    assert parse_csp(header) == policy.directives
    assert parse_csp(header)[directive] == tuple(value.split())


# --- the compiled header lists -------------------------------------------------------------


def test_the_default_headers_are_helmets_plus_permissions_policy():
    compiled = SecurityHeaders().default
    https = dict(compiled.wsgi_https)
    assert {k.lower(): v for k, v in https.items()} == {
        **HELMET_OTHERS,
        "strict-transport-security": HSTS_DEFAULT,
        "content-security-policy": HELMET_CSP,
    }
    http = {k.lower(): v for k, v in compiled.wsgi_http}
    # HSTS and upgrade-insecure-requests only on https.
    assert "strict-transport-security" not in http
    assert http["content-security-policy"] == HELMET_CSP.removesuffix("; upgrade-insecure-requests")
    assert dict(compiled.asgi_https) == {
        k.lower().encode(): v.encode() for k, v in compiled.wsgi_https
    }


def test_the_api_profile_headers():
    compiled = dict(SecurityHeaders(profile="api").default.wsgi_https)
    assert compiled["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert compiled["X-Frame-Options"] == "DENY"
    assert compiled["X-Content-Type-Options"] == "nosniff"


def test_from_settings_reads_every_field():
    policy = SecurityHeaders.from_settings(
        settings(
            FENDER_SECURITY_PROFILE="api",
            FENDER_CSP_REPORT_ONLY="true",
            FENDER_CSP_REPORT_URI="https://r.example/csp",
            FENDER_HSTS_MAX_AGE="63072000",
            FENDER_HSTS_PRELOAD="true",
            FENDER_SECURE_COOKIES="false",
        )
    )
    https = dict(policy.default.wsgi_https)
    assert https["Content-Security-Policy-Report-Only"] == (
        "default-src 'none'; frame-ancestors 'none'; report-uri https://r.example/csp; "
        "report-to csp-endpoint"
    )
    assert "Content-Security-Policy" not in https
    assert https["Reporting-Endpoints"] == 'csp-endpoint="https://r.example/csp"'
    assert https["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains; preload"
    assert policy.cookies is None
    assert SecurityHeaders.from_settings(settings(FENDER_CSP="none")).csp is None
    assert not SecurityHeaders.from_settings(settings(FENDER_SECURITY_HEADERS="false")).enabled
    no_hsts = SecurityHeaders.from_settings(settings(FENDER_HSTS_MAX_AGE="0")).default
    assert "Strict-Transport-Security" not in dict(no_hsts.wsgi_https)


def test_report_only_leaves_out_what_browsers_ignore_there():
    policy = SecurityHeaders(csp_report_only=True).default
    value = dict(policy.wsgi_https)["Content-Security-Policy-Report-Only"]
    assert "upgrade-insecure-requests" not in value


NONCED = CSP.web().override({"script-src": [CSP.SELF, CSP.NONCE], "style-src": CSP.NONCE})


def test_a_nonced_policy_is_spliced_per_request_with_one_join():
    compiled = SecurityHeaders(csp=NONCED).default
    assert compiled.uses_nonce
    assert compiled.csp_https is not None
    assert len(compiled.csp_https) == 3  # two placeholders
    out = dict(wsgi_headers([], compiled, https=True, nonce="N0NCE", cookies=None))
    value = out["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-N0NCE'" in value
    assert "style-src 'nonce-N0NCE'" in value
    assert "{nonce}" not in value
    assert "upgrade-insecure-requests" in value
    plain = dict(wsgi_headers([], compiled, https=False, nonce="N0NCE", cookies=None))
    assert "upgrade-insecure-requests" not in plain["Content-Security-Policy"]
    out_asgi = dict(asgi_headers([], compiled, https=True, nonce="N0NCE", cookies=None))
    assert out_asgi[b"content-security-policy"] == value.encode()


def test_without_nonce_no_nonce_is_made():
    assert not SecurityHeaders().uses_nonce
    assert SecurityHeaders(csp=NONCED).uses_nonce
    assert not SecurityHeaders(csp=NONCED, enabled=False).uses_nonce


def test_a_route_policy_with_a_nonce_makes_the_app_make_nonces():
    policy = SecurityHeaders()

    @security_headers(csp=NONCED)
    def page() -> None: ...

    def other() -> None: ...

    policy.add_endpoints([other])
    assert not policy.uses_nonce
    policy.add_endpoints([page])
    assert policy.uses_nonce
    assert not SecurityHeaders().uses_nonce  # per app, not for the process


def test_the_apps_own_headers_win_and_server_headers_go():
    compiled = SecurityHeaders().default
    app = [
        (b"Content-Security-Policy", b"default-src *"),
        (b"x-frame-options", b"DENY"),
        (b"server", b"gunicorn/23"),
        (b"X-Powered-By", b"PHP"),
    ]
    out = asgi_headers(app, compiled, https=True, nonce=None, cookies=None)
    names = [name.lower() for name, _ in out]
    assert len(names) == len(set(names))
    values = {name.lower(): value for name, value in out}
    assert values[b"content-security-policy"] == b"default-src *"
    assert values[b"x-frame-options"] == b"DENY"
    assert b"server" not in values
    assert b"x-powered-by" not in values
    assert values[b"strict-transport-security"] == HSTS_DEFAULT.encode()


def test_a_nonced_csp_of_the_app_wins_too():
    compiled = SecurityHeaders(csp=NONCED).default
    out = wsgi_headers(
        [("content-security-policy", "default-src 'none'")],
        compiled,
        https=True,
        nonce="x",
        cookies=None,
    )
    assert [v for k, v in out if k.lower() == "content-security-policy"] == ["default-src 'none'"]


def test_a_route_override_is_compiled_once_and_disable_adds_nothing():
    policy = SecurityHeaders()

    @security_headers(csp={"default-src": "'self'", "frame-ancestors": "*"})
    def widget() -> None: ...

    @security_headers(enabled=False)
    def raw() -> None: ...

    @security_headers(headers={"X-Frame-Options": None, "Cache-Control": "no-store"})
    def other() -> None: ...

    def plain() -> None: ...

    compiled = policy.for_endpoint(widget)
    assert compiled is not None
    assert compiled is policy.for_endpoint(widget)
    assert dict(compiled.wsgi_https)["Content-Security-Policy"] == (
        "default-src 'self'; frame-ancestors *"
    )
    assert policy.for_endpoint(raw) is None
    assert wsgi_headers([("a", "b")], None, https=True, nonce=None, cookies=None) == [("a", "b")]
    changed = dict(policy.for_endpoint(other).wsgi_https)  # type: ignore[union-attr]
    assert "X-Frame-Options" not in changed
    assert changed["Cache-Control"] == "no-store"
    assert changed["Content-Security-Policy"] == HELMET_CSP
    assert policy.for_endpoint(plain) is policy.default
    assert policy.for_endpoint(None) is policy.default


def test_is_https_reads_the_scheme_only():
    assert is_https("https")
    assert is_https("wss")
    assert not is_https("http")
    assert not is_https("HTTPS ")
    assert not is_https(None)


# --- HSTS ----------------------------------------------------------------------------------


def test_hsts_header_values():
    assert HSTS().header_value() == HSTS_DEFAULT
    assert HSTS(include_subdomains=False).header_value() == "max-age=31536000"
    assert HSTS(max_age=0).header_value() is None
    assert HSTS.parse("MAX-AGE=5; includesubdomains") == HSTS(max_age=5)
    with pytest.raises(ConfigurationError, match="max-age"):
        HSTS.parse("includeSubDomains")
    with pytest.raises(ConfigurationError, match="once"):
        HSTS.parse("max-age=1; max-age=2")


def test_a_policy_takes_hsts_as_a_string_too():
    policy = SecurityHeaders(hsts="max-age=600")
    assert dict(policy.default.wsgi_https)["Strict-Transport-Security"] == "max-age=600"


# --- cookies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "https", "expected"),
    [
        ("session=abc; Path=/", True, "session=abc; Path=/; Secure; HttpOnly; SameSite=Lax"),
        ("session=abc; Path=/", False, "session=abc; Path=/; HttpOnly; SameSite=Lax"),
        ("sessionid=abc; secure; httponly", True, "sessionid=abc; secure; httponly; SameSite=Lax"),
        ("session=abc; SameSite=Strict", True, "session=abc; SameSite=Strict; Secure; HttpOnly"),
        (
            "session=abc; SameSite=None; Secure",
            True,
            "session=abc; SameSite=None; Secure; HttpOnly",
        ),
        # CSRF cookies are read by the page's JavaScript: no HttpOnly.
        ("csrftoken=t; Path=/", True, "csrftoken=t; Path=/; Secure; SameSite=Lax"),
        ("csrf_token=t", False, "csrf_token=t; SameSite=Lax"),
        ("_csrf=t;", True, "_csrf=t; Secure; SameSite=Lax"),
        ("theme=dark", True, "theme=dark"),
        ("sessions=x", True, "sessions=x"),
    ],
)
def test_session_and_csrf_cookies_are_hardened_never_weakened(cookie, https, expected):
    assert CookiePolicy().harden(cookie, https=https) == expected


def test_an_apps_own_session_cookie_name_is_hardened():
    policy = CookiePolicy().with_session_cookie("my_sid")
    assert policy.harden("my_sid=1", https=True) == "my_sid=1; Secure; HttpOnly; SameSite=Lax"
    with pytest.raises(ConfigurationError, match="session_cookie"):
        CookiePolicy().with_session_cookie("bad name")


def test_set_cookie_headers_are_rewritten_in_the_response():
    out = wsgi_headers(
        [("Set-Cookie", "session=1"), ("Set-Cookie", "other=2")],
        None,
        https=True,
        nonce=None,
        cookies=CookiePolicy(),
    )
    assert out == [
        ("Set-Cookie", "session=1; Secure; HttpOnly; SameSite=Lax"),
        ("Set-Cookie", "other=2"),
    ]


def test_host_cookie():
    assert host_cookie("sid", "v") == "__Host-sid=v; Path=/; Secure; HttpOnly; SameSite=Lax"
    assert host_cookie("__Host-sid", "v", same_site="Strict", http_only=False, max_age=60) == (
        "__Host-sid=v; Path=/; Secure; SameSite=Strict; Max-Age=60"
    )
    for bad, field in [
        ({"domain": "example.com"}, "domain"),
        ({"path": "/app"}, "path"),
        ({"secure": False}, "secure"),
        ({"same_site": "lax"}, "same_site"),
        ({"max_age": "1h"}, "max_age"),
    ]:
        with pytest.raises(ConfigurationError, match=field):
            host_cookie("sid", "v", **bad)
    with pytest.raises(ConfigurationError, match="value"):
        host_cookie("sid", "a b;c")
    with pytest.raises(ConfigurationError, match="name"):
        host_cookie("s id", "v")


# --- the modules' examples -----------------------------------------------------------------


@pytest.mark.parametrize("module", [_csp, _hsts, _cookies, _headers, http_headers])
def test_the_docstring_examples_hold(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried
    assert not failures
