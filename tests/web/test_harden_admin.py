"""The admin guard against a browser inside the admin network, rebinding, and prying.

Each attack of the adversarial pass is replayed first (a cross-site form drain, a forged Host
reading /status, wrong tokens leaving no trace, 405s and versions telling what runs), then
what is still allowed: the token anywhere, the network with the admin header.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

import fender
from fender.http.admin import ADMIN_HEADER
from fender.runtime._drain import drain_flag
from fender.settings import load_settings

from conftest import sample, serve

TOKEN = secrets.token_urlsafe(32)
INSIDE = ("10.1.2.3", 4000)
OUTSIDE = ("192.0.2.7", 4000)
# What a browser sends for <form method=post action=http://10.0.0.5/health/drain> on evil.test
FORM = {
    "Host": "10.0.0.5",
    "Content-Type": "application/x-www-form-urlencoded",
    "Origin": "https://evil.test",
    "Sec-Fetch-Site": "cross-site",
}


def app_with(tmp_path, **options):
    from fastapi import FastAPI

    app = FastAPI()
    fender.install(
        app,
        env="development",
        runtime_dir=str(tmp_path),
        admin_token=TOKEN,
        admin_cidrs="10.0.0.0/8",
        **options,
    )
    return app


def posts(app, *headers, client=INSIDE, path="/health/drain"):
    async def scenario(http):
        return [await http.post(path, headers=h) for h in headers]

    return serve(app, scenario, client=client)


def gets(app, *headers, client=INSIDE, path="/status", method="GET"):
    async def scenario(http):
        return [await http.request(method, path, headers=h) for h in headers]

    return serve(app, scenario, client=client)


def events(logs, kind):
    return [e for e in logs.named("security_event") if e["type"] == kind]


# --- a cross-site form cannot drain -------------------------------------------------------------


def test_a_cross_site_form_from_inside_the_network_cannot_drain(tmp_path, logs):
    app = app_with(tmp_path)
    # the same form without its browser headers: still a simple request, still blind
    plain = {k: v for k, v in FORM.items() if k in {"Host", "Content-Type"}}
    answers = posts(app, FORM, plain)
    assert [a.status_code for a in answers] == [404, 404]
    assert not drain_flag(tmp_path).exists()
    refused = events(logs, "cross_site_request")
    assert [e["reason"] for e in refused] == [
        "Sec-Fetch-Site: cross-site",
        "no x-fender-admin: 1 header nor JSON content type",
    ]
    assert refused[0]["client"] == "10.1.2.3"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({ADMIN_HEADER: "1"}, 202),
        ({"Content-Type": "application/json"}, 202),
        ({ADMIN_HEADER: "1", "Sec-Fetch-Site": "same-origin"}, 202),
        ({ADMIN_HEADER: "1", "Origin": "http://10.0.0.5"}, 202),
        ({ADMIN_HEADER: "1", "Sec-Fetch-Site": "cross-site"}, 404),
        ({ADMIN_HEADER: "1", "Sec-Fetch-Site": "same-site"}, 404),
        ({ADMIN_HEADER: "1", "Origin": "https://evil.test"}, 404),
        ({ADMIN_HEADER: "1", "Origin": "http://10.0.0.5:8080"}, 404),
        ({ADMIN_HEADER: "1", "Origin": "null"}, 404),
        ({ADMIN_HEADER: "yes"}, 404),
    ],
    ids=[
        "header",
        "json",
        "same-origin",
        "own-origin",
        "cross-site",
        "same-site",
        "foreign-origin",
        "other-port",
        "null-origin",
        "bad-header-value",
    ],
)
def test_an_action_by_network_needs_a_request_no_browser_sends_blind(tmp_path, headers, code):
    app = app_with(tmp_path)
    (answer,) = posts(app, {"Host": "10.0.0.5", **headers})
    assert answer.status_code == code
    assert drain_flag(tmp_path).exists() is (code == 202)


def test_the_token_drains_from_anywhere_with_any_host_and_says_who_asked(tmp_path, logs):
    app = app_with(tmp_path)
    headers = {"Authorization": f"Bearer {TOKEN}", "Host": "svc.example", "User-Agent": "x" * 5000}
    (answer,) = posts(app, headers, client=OUTSIDE)
    assert answer.status_code == 202
    (action,) = events(logs, "admin_action")
    assert action["action"] == "drain"
    assert action["via"] == "token"
    assert action["client"] == "192.0.2.7"
    assert len(action["user_agent"]) < 300  # bounded
    assert TOKEN not in str(logs.events)


def test_a_drain_by_network_is_an_admin_action_with_the_client(tmp_path, logs):
    app = app_with(tmp_path)
    (answer,) = posts(app, {"Host": "10.0.0.5", ADMIN_HEADER: "1", "User-Agent": "kubectl"})
    assert answer.status_code == 202
    (action,) = events(logs, "admin_action")
    who = (action["via"], action["client"], action["user_agent"])
    assert who == ("cidr", "10.1.2.3", "kubectl")


# --- Host: DNS rebinding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "options", "code"),
    [
        ("evil.test", {}, 404),
        ("10.0.0.5", {}, 200),
        ("10.0.0.5:8000", {}, 200),
        ("[::1]:8000", {}, 200),
        ("localhost:8000", {}, 200),
        ("ops.example.com", {}, 404),
        ("ops.example.com", {"allowed_hosts": "ops.example.com"}, 200),
        ("evil.test", {"allowed_hosts": "ops.example.com"}, 404),
        ("bad host@evil", {}, 404),
    ],
)
def test_access_by_network_reads_nothing_through_a_foreign_host(tmp_path, host, options, code):
    app = app_with(tmp_path, **options)
    answers = gets(app, {"Host": host})
    answers += gets(app, {"Host": host}, path="/health/detailed")
    assert [a.status_code for a in answers] == [code, code]


def test_the_token_reads_through_any_host(tmp_path):
    app = app_with(tmp_path)
    (answer,) = gets(app, {"Host": "evil.test", "Authorization": f"Bearer {TOKEN}"}, client=OUTSIDE)
    assert answer.status_code == 200


# --- audit --------------------------------------------------------------------------------------


def test_wrong_tokens_are_security_events_without_the_token(tmp_path, logs):
    app = app_with(tmp_path)
    before = sample("security_events_total", type="bad_admin_token")
    wrong = "wrong-" + secrets.token_urlsafe(16)
    answers = gets(app, *[{"Authorization": f"Bearer {wrong}"}] * 3, client=OUTSIDE)
    assert {a.status_code for a in answers} == {404}
    assert sample("security_events_total", type="bad_admin_token") - before == 3
    bad = events(logs, "bad_admin_token")
    assert len(bad) == 3
    assert bad[0]["client"] == "192.0.2.7"
    assert bad[0]["path"] == "/status"
    assert wrong not in str(logs.events)


def test_a_wrong_token_is_refused_even_inside_the_network(tmp_path):
    app = app_with(tmp_path)
    (answer,) = gets(app, {"Host": "10.0.0.5", "Authorization": "Bearer nope"})
    assert answer.status_code == 404


def test_other_refusals_are_admin_denied_events(tmp_path, logs):
    app = app_with(tmp_path)
    gets(app, {}, client=OUTSIDE)
    (denied,) = events(logs, "admin_denied")
    assert denied["client"] == "192.0.2.7"
    assert "FENDER_ADMIN_CIDRS" in denied["reason"]


def test_the_public_summary_of_quick_is_no_refusal(tmp_path, logs):
    app = app_with(tmp_path)
    (answer,) = gets(app, {}, client=OUTSIDE, path="/health/quick")
    assert answer.status_code == 200
    assert not logs.named("security_event")


# --- disclosure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health/drain"),
        ("DELETE", "/status"),
        ("PUT", "/circuit-breaker"),
        ("POST", "/health/detailed"),
        ("GET", "/status"),
    ],
)
def test_protected_paths_answer_strangers_as_a_missing_path(tmp_path, method, path):
    app = app_with(tmp_path)
    (answer,) = gets(app, {}, client=OUTSIDE, path=path, method=method)
    (missing,) = gets(app, {}, client=OUTSIDE, path="/no-such-path/../nothing", method="GET")
    assert answer.status_code == 404
    assert "allow" not in answer.headers
    body = answer.json()
    assert body == {"error": "not_found", "request_id": answer.headers["x-request-id"]}
    assert missing.status_code == 404


def test_the_admin_still_learns_the_methods(tmp_path):
    app = app_with(tmp_path)
    (answer,) = gets(
        app, {"Authorization": f"Bearer {TOKEN}"}, client=OUTSIDE, path="/health/drain"
    )
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_hidden_versions_are_shown_to_the_admin_only(tmp_path):
    app = app_with(tmp_path, hide_versions=True)
    public, admin = gets(
        app, {}, {"Authorization": f"Bearer {TOKEN}"}, client=OUTSIDE, path="/health/version"
    )
    assert public.status_code == admin.status_code == 200
    stack = {"python", "framework", "fender"}
    assert not stack & set(public.json())
    assert stack <= set(admin.json())
    assert public.json()["service"] == admin.json()["service"]


def test_versions_shown_when_not_hidden(tmp_path):
    app = app_with(tmp_path, hide_versions=False)
    (public,) = gets(app, {}, client=OUTSIDE, path="/health/version")
    assert {"python", "framework", "fender"} <= set(public.json())


def test_versions_are_hidden_by_default_in_production_only():
    production = load_settings({"FENDER_ENV": "production"}, env_file=None)
    development = load_settings({"FENDER_ENV": "development"}, env_file=None)
    shown = load_settings({"FENDER_ENV": "production", "FENDER_HIDE_VERSIONS": "0"}, env_file=None)
    assert (production.versions_hidden, development.versions_hidden) == (True, False)
    assert shown.versions_hidden is False


# --- the same on Flask (WSGI) -------------------------------------------------------------------


def test_flask_refuses_the_cross_site_form_and_accepts_the_header(tmp_path):
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)
    Fender(app, env="development", runtime_dir=str(tmp_path), admin_cidrs="10.0.0.0/8")
    transport = httpx.WSGITransport(app=app, remote_addr="10.1.2.3")
    with httpx.Client(transport=transport, base_url="http://10.0.0.5") as client:
        forged = client.post("/health/drain", headers=FORM)
        assert forged.status_code == 404
        assert not drain_flag(tmp_path).exists()
        rebound = client.get("/status", headers={"Host": "evil.test"})
        assert rebound.status_code == 404
        allowed = client.post("/health/drain", headers={ADMIN_HEADER: "1"})
        assert allowed.status_code == 202
    assert drain_flag(tmp_path).exists()
