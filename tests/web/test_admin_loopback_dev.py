"""In development, with no admin CIDRs, loopback clients open the protected endpoints.

The guard's decisions first (who is let in, and who is not: production, other addresses,
explicit CIDRs, a rebinding Host, a request a local proxy relays), then through a FastAPI and
a Flask app, whose start-up line says the door is open.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

import fender
from fender.http.admin import ADMIN_HEADER, AdminGuard, Grant
from fender.http.endpoints import Request
from fender.ratelimit._config import RateLimitConfig
from fender.settings import load_settings

from conftest import serve

TOKEN = secrets.token_urlsafe(32)
LOCAL_HOST = {"host": "127.0.0.1:8000"}


def guard(env: str = "development", **variables: str) -> AdminGuard:
    settings = load_settings({"FENDER_ENV": env, **variables}, env_file=None)
    return AdminGuard(settings, RateLimitConfig.from_settings(settings).resolver)


def request(
    client: str | None,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    path: str = "/status",
) -> Request:
    return Request(method=method, path=path, headers=headers or LOCAL_HOST, client=client)


# --- the guard ----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.1"])
def test_development_admits_loopback_without_a_token(client):
    dev = guard()
    assert dev.loopback_open
    assert dev.grant(request(client)) is Grant.NETWORK


@pytest.mark.parametrize("client", ["192.0.2.7", "10.1.2.3", "2001:db8::1", None, "testclient"])
def test_development_admits_no_other_address(client, logs):
    assert guard().grant(request(client)) is None
    (denied,) = [e for e in logs.named("security_event") if e["type"] == "admin_denied"]
    assert "FENDER_ENV=development" in denied["reason"]


def test_production_never_admits_loopback():
    production = guard("production")
    assert not production.loopback_open
    assert production.grant(request("127.0.0.1")) is None


def test_explicit_cidrs_replace_loopback_in_development():
    dev = guard(FENDER_ADMIN_CIDRS="10.0.0.0/8")
    assert not dev.loopback_open
    assert dev.grant(request("127.0.0.1")) is None
    assert dev.grant(request("10.1.2.3")) is Grant.NETWORK


def test_the_token_still_works_and_a_wrong_one_is_refused_even_from_loopback():
    dev = guard(FENDER_ADMIN_TOKEN=TOKEN)
    bearer = {"host": "evil.test", "authorization": f"Bearer {TOKEN}"}
    assert dev.grant(request("192.0.2.7", bearer)) is Grant.TOKEN
    wrong = {**LOCAL_HOST, "authorization": "Bearer nope"}
    assert dev.grant(request("127.0.0.1", wrong)) is None


@pytest.mark.parametrize(
    ("host", "granted"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("127.0.0.2:8000", True),
        ("app.localhost:8000", True),
        ("evil.test", False),
        ("evil.test:8000", False),
        # names that look local but resolve where their owner's DNS says
        ("127.attacker.example:8000", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.attacker.example", False),
    ],
)
def test_loopback_reads_nothing_through_a_rebinding_host(host, granted):
    assert (guard().grant(request("127.0.0.1", {"host": host})) is not None) is granted


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
def test_a_request_relayed_by_an_untrusted_local_proxy_is_not_loopback(header):
    # a tunnel or local proxy not in FENDER_TRUSTED_PROXIES connects from 127.0.0.1
    value = "203.0.113.9" if header == "x-forwarded-for" else "for=203.0.113.9"
    assert guard().grant(request("127.0.0.1", {**LOCAL_HOST, header: value})) is None


def test_behind_a_trusted_proxy_the_resolved_client_decides():
    dev = guard(FENDER_TRUSTED_PROXIES="127.0.0.1/32")
    relayed = {**LOCAL_HOST, "x-forwarded-for": "203.0.113.9"}
    local = {**LOCAL_HOST, "x-forwarded-for": "127.0.0.9"}
    assert dev.grant(request("127.0.0.1", relayed)) is None
    assert dev.grant(request("127.0.0.1", local)) is Grant.NETWORK
    # the proxy's chain missing: an unreadable identity is never an admin
    assert dev.grant(request("127.0.0.1")) is None


def test_a_drain_from_loopback_still_needs_a_request_no_browser_sends_blind():
    dev = guard()
    drain = {"method": "POST", "path": "/health/drain"}
    assert dev.grant(request("127.0.0.1", **drain), strict=True, action="drain") is None
    marked = {**LOCAL_HOST, ADMIN_HEADER: "1"}
    assert dev.grant(request("127.0.0.1", marked, **drain), strict=True, action="drain") is (
        Grant.NETWORK
    )
    cross = {**marked, "sec-fetch-site": "cross-site"}
    assert dev.grant(request("127.0.0.1", cross, **drain), strict=True, action="drain") is None


def test_policy_never_closes_loopback_too():
    assert guard(FENDER_ADMIN_POLICY="never").grant(request("127.0.0.1")) is None


# --- through the apps ---------------------------------------------------------------------------


def _started(logs):
    (started,) = logs.named("fender_started")
    return started


def test_fastapi_status_opens_from_loopback_in_development(tmp_path, logs):
    from fastapi import FastAPI

    app = FastAPI()
    fender.install(app, env="development", runtime_dir=str(tmp_path))

    async def scenario(http):
        return [
            await http.get(path, headers={"host": "127.0.0.1:8000", "accept": "text/html"})
            for path in ("/status", "/health/detailed")
        ]

    status, detailed = serve(app, scenario, client=("127.0.0.1", 40000))
    strangers = serve(app, scenario, client=("192.0.2.7", 40000))
    assert (status.status_code, detailed.status_code) == (200, 200)
    assert "text/html" in status.headers["content-type"]  # a browser's page
    assert [a.status_code for a in strangers] == [404, 404]
    started = logs.named("fender_started")[0]  # one start a serve()
    assert {"/status", "/health/detailed", "/circuit-breaker"} <= set(
        started["admin_from_loopback"]
    )
    assert "FENDER_ENV=development" in started["admin_note"]


def test_flask_status_opens_from_loopback_in_development(tmp_path, logs):
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)
    Fender(app, env="development", runtime_dir=str(tmp_path))
    local = httpx.WSGITransport(app=app, remote_addr="127.0.0.1")
    stranger = httpx.WSGITransport(app=app, remote_addr="192.0.2.7")
    with httpx.Client(transport=local, base_url="http://127.0.0.1:8000") as client:
        status = client.get("/status", headers={"accept": "application/json"})
        breakers = client.get("/circuit-breaker")
    with httpx.Client(transport=stranger, base_url="http://127.0.0.1:8000") as client:
        refused = client.get("/status")
    assert (status.status_code, breakers.status_code, refused.status_code) == (200, 200, 404)
    assert "/status" in _started(logs)["admin_from_loopback"]


def test_production_says_nothing_of_loopback_and_keeps_it_out(tmp_path, logs):
    from fastapi import FastAPI

    app = FastAPI()
    fender.install(app, env="production", runtime_dir=str(tmp_path), testing=True)

    async def scenario(http):
        return await http.get("/status", headers={"host": "127.0.0.1:8000"})

    assert serve(app, scenario, client=("127.0.0.1", 40000)).status_code == 404
    assert "admin_from_loopback" not in logs.named("fender_started")[0]
