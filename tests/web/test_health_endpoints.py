"""The health family over ASGI (FastAPI, bare ASGI) and WSGI (Flask), in process."""

from __future__ import annotations

import secrets
import time

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fender
from fender._status import Status
from fender.health import CheckResult, Kind
from fender.http.health import PUBLIC_RUN_INTERVAL
from fender.runtime._drain import drain_flag

from conftest import serve

TOKEN = secrets.token_urlsafe(32)


def fastapi_app(tmp_path, **options):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, str]:
        return {"done": "yes"}

    runtime = fender.install(
        app,
        env="development",
        runtime_dir=str(tmp_path),
        admin_token=TOKEN,
        **options,
    )
    return app, runtime


def add(runtime, name, result, **options):
    def check():
        if isinstance(result, Exception):
            raise result
        return result

    runtime.health.add(check, name=name, **options)


def test_ready_is_503_until_startup_then_200(tmp_path):
    app, runtime = fastapi_app(tmp_path)

    async def before(client):
        return (await client.get("/health/ready")).status_code

    import asyncio

    async def not_started():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await before(client)

    assert asyncio.run(not_started()) == 503
    assert runtime.lifecycle.state == "starting"

    async def started(client):
        response = await client.get("/health/ready")
        return response.status_code, response.json(), response.headers["cache-control"]

    assert serve(app, started) == (200, {"status": "pass", "state": "ready"}, "no-store")


def test_a_failing_critical_readiness_check_keeps_the_process_unready(tmp_path):
    app, runtime = fastapi_app(tmp_path)
    add(runtime, "database", ConnectionError("refused"))

    async def scenario(client):
        return (await client.get("/health/ready")).json()

    assert serve(app, scenario) == {"status": "fail", "state": "starting"}


def test_a_non_critical_dependency_down_never_blocks_the_boot(tmp_path):
    app, runtime = fastapi_app(tmp_path)
    add(runtime, "search", ConnectionError("refused"), critical=False)

    async def scenario(client):
        ready = await client.get("/health/ready")
        health = await client.get("/health")
        return ready.status_code, health.status_code, health.json()["status"]

    assert serve(app, scenario) == (200, 200, "warn")


@pytest.mark.parametrize(
    ("result", "critical", "status", "code"),
    [
        (None, True, "pass", 200),
        (CheckResult(Status.WARN, "fallback: memory"), True, "warn", 200),
        (ConnectionError("refused"), True, "fail", 503),
        (ConnectionError("refused"), False, "warn", 200),
        (False, True, "fail", 503),
    ],
)
def test_health_aggregate(tmp_path, result, critical, status, code):
    app, runtime = fastapi_app(tmp_path)
    add(runtime, "dep", result, critical=critical)

    async def scenario(client):
        response = await client.get("/health")
        return response.status_code, response.json()

    got_code, body = serve(app, scenario)
    assert (got_code, body["status"]) == (code, status)
    assert "checks" not in body  # safe to expose: aggregate only


def test_live_never_checks_dependencies_and_reports_a_stalled_loop(tmp_path):
    app, runtime = fastapi_app(tmp_path)
    add(runtime, "database", ConnectionError("refused"))

    async def scenario(client):
        first = (await client.get("/health/live")).status_code
        runtime.health_endpoints.loop.lag = 60.0
        second = (await client.get("/health/live")).json()
        return first, second

    first, second = serve(app, scenario)
    assert first == 200
    assert second["status"] == "fail"


@pytest.mark.parametrize(
    ("headers", "client", "options", "code"),
    [
        ({}, "127.0.0.1", {}, 404),
        ({"Authorization": "Bearer wrong-token"}, "127.0.0.1", {}, 404),
        ({"Authorization": f"Bearer {TOKEN}"}, "127.0.0.1", {}, 200),
        ({"Authorization": f"bearer {TOKEN}"}, "127.0.0.1", {}, 200),
        ({}, "10.1.2.3", {"admin_cidrs": "10.0.0.0/8", "allowed_hosts": "testserver"}, 200),
        ({}, "192.168.1.1", {"admin_cidrs": "10.0.0.0/8"}, 404),
        ({}, "127.0.0.1", {"admin_deny_status": 401}, 401),
        ({}, "127.0.0.1", {"admin_policy": "always"}, 200),
        ({"Authorization": f"Bearer {TOKEN}"}, "127.0.0.1", {"admin_policy": "never"}, 404),
    ],
    ids=[
        "no-token",
        "bad-token",
        "token",
        "lowercase-scheme",
        "cidr",
        "other-cidr",
        "401",
        "always",
        "never",
    ],
)
def test_protection_of_detailed_and_status(tmp_path, headers, client, options, code):
    app, _ = fastapi_app(tmp_path, **options)

    async def scenario(http):
        return [
            (await http.get(path, headers=headers)).status_code
            for path in ("/health/detailed", "/status", "/circuit-breaker")
        ]

    assert serve(app, scenario, client=(client, 4000)) == [code, code, code]


def test_detailed_shows_every_check_and_negotiates_ietf(tmp_path):
    app, runtime = fastapi_app(tmp_path)
    add(
        runtime,
        "queue",
        CheckResult(Status.WARN, "lag 4s", observed_value=4.0, observed_unit="s"),
        critical=False,
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario(client):
        plain = await client.get("/health/detailed", headers=auth)
        ietf = await client.get(
            "/health/detailed", headers={**auth, "Accept": "application/health+json"}
        )
        return plain, ietf

    plain, ietf = serve(app, scenario)
    body = plain.json()
    assert body["checks"]["queue"]["status"] == "warn"
    assert body["checks"]["queue"]["observed_value"] == 4.0
    assert {"disk", "memory"} <= set(body["checks"])
    assert ietf.headers["content-type"].startswith("application/health+json")
    document = ietf.json()
    assert document["status"] == "warn"
    assert any(key.startswith("queue") for key in document["checks"])


def test_no_secret_reaches_any_output(tmp_path):
    app, runtime = fastapi_app(tmp_path, admin_policy="always")
    add(
        runtime,
        "cache",
        ConnectionError("cannot reach redis://app:s3cr3t-pw@cache:6379/0 token=abcd1234efgh5678"),
        critical=False,
    )

    async def scenario(client):
        paths = ("/health", "/health/quick", "/health/detailed", "/status")
        bodies = [(await client.get(path)).text for path in paths]
        bodies.append((await client.get("/status", headers={"Accept": "text/html"})).text)
        return bodies

    for body in serve(app, scenario):
        assert "s3cr3t-pw" not in body
        assert "abcd1234efgh5678" not in body


def test_version(tmp_path):
    app, _ = fastapi_app(
        tmp_path, release="v1.4.2", commit="abc1234", build_time="2026-11-30T06:00:00Z"
    )

    async def scenario(client):
        return (await client.get("/health/version")).json()

    body = serve(app, scenario)
    assert body["version"] == "v1.4.2"
    assert body["commit"] == "abc1234"
    assert body["build_time"] == "2026-11-30T06:00:00Z"
    assert body["framework"].startswith("fastapi ")
    assert body["python"].count(".") == 2
    assert body["started_at"].endswith("Z")


def test_status_json_and_html(tmp_path):
    # A limit this process never nears: with 512 MiB, a long test run's RSS (393 MiB in CI)
    # passed the 75% mark and the memory check joined the degraded ones.
    app, runtime = fastapi_app(tmp_path, admin_policy="always", memory_limit_mb=65536)
    add(runtime, "cache", CheckResult(Status.WARN, "fallback: memory"), critical=False)
    from fender.resilience import default_registry

    default_registry.get_or_create("payments-api")
    auth: dict[str, str] = {}

    async def scenario(client):
        as_json = (await client.get("/status", headers=auth)).json()
        page = await client.get("/status", headers={**auth, "Accept": "text/html"})
        css = await client.get("/status/style.css")
        return as_json, page, css

    summary, page, css = serve(app, scenario)
    assert summary["state"] == "ready"
    assert summary["degraded"] == ["cache"]
    assert summary["memory"]["limit_bytes"] == 65536 * 1024 * 1024
    assert any(b["name"] == "payments-api" for b in summary["breakers"])
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "style=" not in page.text
    assert "<style" not in page.text
    assert 'href="/status/style.css"' in page.text
    assert "payments-api" in page.text
    assert css.headers["content-type"].startswith("text/css")


def test_drain_turns_readiness_off_while_requests_succeed(tmp_path):
    app, _runtime = fastapi_app(tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario(client):
        denied = (await client.post("/health/drain")).status_code
        accepted = await client.post("/health/drain", headers=auth)
        ready = await client.get("/health/ready")
        work = await client.get("/work")
        return denied, accepted.status_code, ready.status_code, work

    denied, accepted, ready, work = serve(app, scenario)
    assert (denied, accepted, ready) == (404, 202, 503)
    assert work.status_code == 200
    assert work.headers["connection"] == "close"
    assert drain_flag(tmp_path).exists()


def test_a_drain_flag_raised_elsewhere_reaches_this_worker(tmp_path):
    from fender.runtime._drain import request_drain

    app, runtime = fastapi_app(tmp_path)

    async def scenario(client):
        first = (await client.get("/health/ready")).status_code
        request_drain(tmp_path, "fender drain")
        second = (await client.get("/health/ready")).status_code
        return first, second

    assert serve(app, scenario) == (200, 503)
    assert runtime.lifecycle.state == "stopped"  # shut down after the scenario


def test_prefix_and_aliases(tmp_path):
    app, _ = fastapi_app(tmp_path, health_prefix="/_internal/health", health_aliases=True)

    async def scenario(client):
        return [
            (await client.get(path)).status_code
            for path in (
                "/_internal/health/live",
                "/_internal/health",
                "/healthz",
                "/livez",
                "/readyz",
                "/health/live",
            )
        ]

    # /health/live is no longer fender's: the app has no such route
    assert serve(app, scenario) == [200, 200, 200, 200, 200, 404]


def test_declared_checks_join_every_app(tmp_path):
    calls = []

    @fender.health.check(name="declared_dep", critical=False, kind="info")
    def declared_dep() -> bool:
        calls.append(1)
        return True

    app, _runtime = fastapi_app(tmp_path, admin_policy="always")

    async def scenario(client):
        return (await client.get("/health/detailed")).json()["checks"]

    assert "declared_dep" in serve(app, scenario)
    assert calls


def test_quick_is_the_snapshot_without_io(tmp_path):
    app, runtime = fastapi_app(tmp_path)
    calls = []

    def counted() -> bool:
        calls.append(1)
        return True

    runtime.health.add(counted, name="counted", kind=Kind.INFO)

    async def scenario(client):
        await runtime.health.run()  # settle: the refresher's first run has happened
        before = len(calls)
        for _ in range(5):
            assert (await client.get("/health/quick")).status_code == 200
        return before, len(calls)

    before, after = serve(app, scenario)
    assert before == after


def test_flask_serves_the_same_family(tmp_path):
    from flask import Flask

    from fender.flask import Fender

    app = Flask("health")
    Fender(app, env="development", runtime_dir=str(tmp_path), admin_token=TOKEN)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").json() == {"status": "pass", "state": "ready"}
        assert client.get("/health").json()["status"] in ("pass", "warn")
        assert client.get("/health/detailed").status_code == 404
        detailed = client.get("/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"})
        assert detailed.status_code == 200
        assert "disk" in detailed.json()["checks"]
        assert client.get("/health/version").json()["framework"].startswith("flask ")
        assert client.head("/health/live").content == b""


def test_celery_configured_but_not_installed_is_said_not_crashed(tmp_path, monkeypatch):
    import importlib.util

    from fender.testing import capture_logs

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "celery" else real(name, *a)
    )
    with capture_logs() as logs:
        _, runtime = fastapi_app(tmp_path, celery_broker_url="redis://127.0.0.1:1/0")
    assert "celery" not in {c.name for c in runtime.health.select()}
    assert logs.named("celery_check_skipped")


def test_quick_shows_checks_only_to_the_authorized(tmp_path):
    app, runtime = fastapi_app(tmp_path)

    async def scenario(client):
        await runtime.health.run()
        public = (await client.get("/health/quick")).json()
        admin = (
            await client.get("/health/quick", headers={"Authorization": f"Bearer {TOKEN}"})
        ).json()
        return public, admin

    public, admin = serve(app, scenario)
    assert "checks" not in public
    assert public["status"] in ("pass", "warn")
    assert {"disk", "memory"} <= set(admin["checks"])


def test_public_health_cannot_make_the_service_hammer_its_dependencies(tmp_path):
    app, runtime = fastapi_app(tmp_path)
    calls = []

    def dependency() -> bool:
        calls.append(1)
        return True

    runtime.health.add(dependency, name="dependency", kind=Kind.INFO)

    async def scenario(client):
        await runtime.health.run()  # settle the refresher's first run
        before = len(calls)
        started = time.monotonic()
        for _ in range(20):
            assert (await client.get("/health")).status_code == 200
        return len(calls) - before, time.monotonic() - started

    runs, elapsed = serve(app, scenario)
    # One run per second at most, whatever the pace of the 20 requests (a loaded machine may
    # take more than a second to serve them): 20 runs without the spacing.
    assert runs <= 1 + int(elapsed / PUBLIC_RUN_INTERVAL)


# --- whatever a check returns, the family answers 200 or 503, never 500 -------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_a_value_no_json_encoder_takes_never_makes_a_500(tmp_path):
    app, runtime = fastapi_app(tmp_path, admin_policy="always")
    add(runtime, "counter", CheckResult(Status.PASS, observed_value=2**70), critical=False)
    add(
        runtime,
        "odd",
        CheckResult(
            Status.WARN,
            "odd\ud800",
            observed_value=float("nan"),
            details={"n": -(2**70), 1: {b"x"}, "o": Unprintable()},
        ),
        critical=False,
    )

    async def scenario(client):
        return [
            await client.get(path, headers={"Accept": accept})
            for path in ("/health/detailed", "/health/quick", "/health", "/status")
            for accept in ("application/json", "application/health+json")
        ]

    answers = serve(app, scenario)
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert orjson.loads(answer.content)["status"] == "warn"
    detailed = answers[0].json()
    assert detailed["checks"]["counter"]["observed_value"] == "1180591620717411303424"
    assert detailed["checks"]["odd"]["details"] == {
        "n": "-1180591620717411303424",
        "1": ["x"],
        "o": "<Unprintable>",
    }


leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**200).map(lambda n: n if n % 2 else -n)
    | st.floats()
    | st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
    | st.binary(max_size=8)
)
json_ish = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.frozensets(leaves, max_size=3)
        | st.dictionaries(leaves, children, max_size=3)
    ),
    max_leaves=12,
)


def test_any_check_value_gets_200_or_503_from_every_endpoint(tmp_path):
    from flask import Flask

    from fender.flask import Fender

    app = Flask("health")
    Fender(app, env="development", runtime_dir=str(tmp_path), admin_policy="always")
    current = [CheckResult(Status.PASS)]
    app.extensions["fender"].health.add(lambda: current[0], name="anything")
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t")

    @settings(max_examples=40, deadline=None)
    @given(
        status=st.sampled_from(list(Status)),
        observed=json_ish,
        details=st.dictionaries(leaves, json_ish, max_size=3),
    )
    def prop(status, observed, details):
        current[0] = CheckResult(status, "x", observed_value=observed, details=details)
        expected = 503 if status is Status.FAIL else 200
        for path in ("/health/detailed", "/health/quick", "/health", "/status"):
            for accept in ("application/json", "application/health+json"):
                answer = client.get(path, headers={"Accept": accept})
                assert answer.status_code in (200, 503), (path, answer.text)
                orjson.loads(answer.content)  # strict: raises on anything but valid JSON
        fresh = client.get("/health/detailed")
        assert fresh.status_code == expected
        assert fresh.json()["checks"]["anything"]["status"] == str(status)

    with client:
        prop()


# --- one HTTP mapping for the family (FENDER_HEALTH_WARN_STATUS / FENDER_HEALTH_FAIL_STATUS) ---

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("options", "code"),
    [
        pytest.param({}, 200, id="default-warn-200"),
        pytest.param({"health_warn_status": 503}, 503, id="warn-503"),
        pytest.param({"health_warn_status": 299}, 299, id="warn-299"),
    ],
)
def test_a_degraded_check_is_answered_with_the_warn_code(tmp_path, options, code):
    app, runtime = fastapi_app(tmp_path, **options)
    add(runtime, "cache", CheckResult(Status.WARN, "fallback: memory"), critical=False)

    async def scenario(client):
        await runtime.health.run()
        return {
            path: (await client.get(path, headers=headers)).status_code
            for path, headers in (
                ("/health", {}),
                ("/health/quick", {}),
                ("/health/quick", AUTH),
                ("/health/detailed", AUTH),
                ("/health/detailed", {**AUTH, "Accept": "application/health+json"}),
                ("/health/ready", {}),
                ("/health/live", {}),
            )
        }

    answers = serve(app, scenario)
    assert answers.pop("/health/live") == 200  # liveness never reads the checks
    assert answers == dict.fromkeys(answers, code)


def test_the_flask_family_uses_the_same_mapping(tmp_path):
    from flask import Flask

    from fender.flask import Fender

    app = Flask("health")
    Fender(app, env="development", runtime_dir=str(tmp_path), health_warn_status=503)
    app.extensions["fender"].health.add(lambda: Status.WARN, name="cache", critical=False)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        assert client.get("/health").status_code == 503
        assert client.get("/health/ready").status_code == 503


@pytest.mark.parametrize(
    ("fail_status", "public", "ready"),
    [
        pytest.param(503, 503, 503, id="default"),
        pytest.param(500, 500, 500, id="fail-500"),
        # A fail code of 200 is the operator's call for /health; a readiness probe that
        # cannot fail would keep a broken pod in rotation.
        pytest.param(200, 200, 503, id="fail-200-probe-still-503"),
    ],
)
def test_a_failing_check_is_answered_with_the_fail_code(tmp_path, fail_status, public, ready):
    app, runtime = fastapi_app(tmp_path, health_fail_status=fail_status)
    healthy = [True]
    runtime.health.add(lambda: healthy[0], name="database")

    async def scenario(client):
        healthy[0] = False
        await runtime.health.run()
        answers = [
            (await client.get(path, headers=AUTH)).status_code
            for path in ("/health", "/health/quick", "/health/detailed")
        ]
        probe = await client.get("/health/ready")
        return answers, probe.status_code, probe.json()

    answers, probe_code, probe = serve(app, scenario)
    assert answers == [public] * 3
    assert (probe_code, probe) == (ready, {"status": "fail", "state": "ready"})


@pytest.mark.parametrize(("fail_status", "code"), [(503, 503), (500, 500), (200, 503)])
def test_a_stalled_loop_fails_liveness_with_an_error_code(tmp_path, fail_status, code):
    app, runtime = fastapi_app(tmp_path, health_fail_status=fail_status)

    async def scenario(client):
        runtime.health_endpoints.loop.lag = 60.0
        return (await client.get("/health/live")).status_code

    assert serve(app, scenario) == code


def test_readiness_is_503_while_starting_or_draining_whatever_the_mapping(tmp_path):
    lenient = {"health_warn_status": 200, "health_fail_status": 200}
    app, runtime = fastapi_app(tmp_path, **lenient)
    add(runtime, "database", ConnectionError("refused"))  # keeps the process STARTING

    async def starting(client):
        return (await client.get("/health/ready")).status_code, (await client.get("/health"))

    ready, health = serve(app, starting)
    assert ready == 503
    assert (health.status_code, health.json()["status"]) == (200, "fail")  # the mapping

    app, runtime = fastapi_app(tmp_path, **lenient)

    async def draining(client):
        before = (await client.get("/health/ready")).status_code
        await client.post("/health/drain", headers=AUTH)
        after = await client.get("/health/ready")
        return before, after.status_code, after.json()

    assert serve(app, draining) == (200, 503, {"status": "fail", "state": "draining"})


# --- GET /circuit-breaker -----------------------------------------------------------------------


def test_circuit_breaker_shows_state_counts_rate_and_time_to_the_next_trial(tmp_path):
    from fender._clock import ManualClock
    from fender.resilience import BreakerConfig, BreakerRegistry, SlidingWindowType

    app, runtime = fastapi_app(tmp_path)
    clock = ManualClock()
    config = BreakerConfig(
        failure_threshold=3,
        sliding_window_type=SlidingWindowType.COUNT_BASED,
        sliding_window_size=10,
        minimum_number_of_calls=4,
        recovery_timeout=30.0,
        recovery_jitter=0.0,
        half_open_slot_timeout=60.0,
    )
    breakers = BreakerRegistry(config, clock=clock)
    runtime.health_endpoints.breakers = breakers  # the registry the endpoint reads

    def report(name, outcomes):
        breaker = breakers.get_or_create(name)
        for ok in outcomes:
            permit = breaker.try_acquire()
            if ok:
                breaker.on_success(0.01, permit)
            else:
                breaker.on_error(ConnectionError("refused"), 0.01, permit)
        return breaker

    report("search", [True, True, False, True])
    inventory = report("inventory", [False, False, False])  # OPEN at t=1000
    clock.advance(31.0)
    assert inventory.try_acquire() is not None  # past its timeout: one trial in flight
    report("payments", [False, False, False])  # OPEN at t=1031
    clock.advance(12.0)

    async def scenario(client):
        denied = (await client.get("/circuit-breaker")).status_code
        return denied, (await client.get("/circuit-breaker", headers=AUTH))

    denied, answer = serve(app, scenario)
    assert denied == 404
    assert answer.status_code == 200
    by_name = {b["name"]: b for b in answer.json()["breakers"]}
    assert list(by_name) == ["search", "inventory", "payments"]
    assert by_name["search"] == {
        "name": "search",
        "state": "closed",
        "calls": 4,
        "failed_calls": 1,
        "slow_calls": 0,
        "failure_rate": 25.0,
        "slow_call_rate": 0.0,
        "consecutive_failures": 0,
        "half_open_in_flight": 0,
        "retry_after": 0.0,
        "recovery_timeout": 30.0,
    }
    assert by_name["payments"] == {
        "name": "payments",
        "state": "open",
        "calls": 3,
        "failed_calls": 3,
        "slow_calls": 0,
        "failure_rate": None,  # fewer calls than minimum_number_of_calls
        "slow_call_rate": None,
        "consecutive_failures": 3,
        "half_open_in_flight": 0,
        "retry_after": 18.0,  # 30 s open, 12 s gone
        "recovery_timeout": 30.0,
    }
    assert by_name["inventory"]["state"] == "half_open"
    assert by_name["inventory"]["half_open_in_flight"] == 1
    assert by_name["inventory"]["retry_after"] == 0.0  # a second trial slot is free


def test_negotiation_honours_q_zero_and_health_json_everywhere(tmp_path):
    app, _runtime = fastapi_app(tmp_path, admin_policy="always")

    async def scenario(client):
        no_html = await client.get("/status", headers={"Accept": "text/html;q=0, application/json"})
        health = await client.get("/health", headers={"Accept": "application/health+json"})
        quick = await client.get("/health/quick", headers={"Accept": "application/health+json"})
        plain = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text;q=0, text/plain"}
        )
        return no_html, health, quick, plain

    no_html, health, quick, plain = serve(app, scenario)
    assert no_html.headers["content-type"] == "application/json"
    assert no_html.json()["state"]
    assert health.headers["content-type"] == "application/health+json"
    assert health.json() == {"status": "pass"}  # the aggregate only, in either format
    assert quick.headers["content-type"] == "application/health+json"
    assert quick.json()["status"] == "pass"
    assert plain.headers["content-type"].startswith("text/plain")


def test_drain_with_an_unwritable_runtime_dir_drains_this_worker_and_says_why(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    app, _runtime = fastapi_app(blocker / "run")  # its parent is a file: mkdir fails
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario(client):
        answer = await client.post("/health/drain", headers=auth)
        ready = await client.get("/health/ready")
        return answer, ready.status_code

    answer, ready = serve(app, scenario)
    assert answer.status_code == 500
    assert answer.json()["error"] == "drain_flag_unwritable"
    assert "FENDER_RUNTIME_DIR" in answer.json()["detail"]
    assert answer.json()["state"] == "draining"
    assert ready == 503
