"""DATABASE_URL set: every flavour starts, and the database is a readiness check that tells.

The URL is the app's: a driver or dialect fender cannot use is a ``warn`` on fender's check,
never a failure to boot.
"""

from __future__ import annotations

import sys

import orjson
import pytest

import fender
from fender.settings import load_settings

from apps import fastapi_app

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "pg-s3cret-password"


def database_check(client) -> dict:
    body = orjson.loads(client.get("/health/detailed", headers=AUTH).content)
    return body["checks"]["database"]


def test_every_flavour_starts_with_a_database_url(make_client, tmp_path):
    client = make_client(database_url=f"sqlite:///{tmp_path}/app.db", admin_token=TOKEN)
    assert client.get("/items/7").status_code == 200
    assert database_check(client)["status"] == "pass"


def test_a_dead_database_fails_readiness(make_client, tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "app.db"  # sqlite cannot create it
    client = make_client(database_url=f"sqlite:///{missing}", admin_token=TOKEN)
    assert database_check(client)["status"] == "fail"
    assert client.get("/health/ready").status_code == 503
    assert client.get("/items/7").status_code == 200  # the app itself still answers


def test_overrides_on_given_settings_do_not_configure_a_database():
    from fastapi import FastAPI

    settings = load_settings({"FENDER_ENV": "development"}, env_file=None)
    runtime = fender.install(FastAPI(), settings=settings, slow_request_ms=5)
    assert runtime.settings.slow_request_ms == 5
    assert "database" not in {check.name for check in runtime.health.select()}


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        pytest.param(
            f"postgresql+psycopg2://app:{PASSWORD}@127.0.0.1:1/app",
            "driver not installed: pip install psycopg2-binary",
            id="missing-driver",
        ),
        pytest.param(
            f"foo://app:{PASSWORD}@127.0.0.1:1/app", "unknown dialect 'foo'", id="unknown-dialect"
        ),
    ],
)
def test_a_database_url_fender_cannot_use_warns_and_the_app_boots(
    make_client, monkeypatch, url, fix
):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # import psycopg2 now fails
    client = make_client(database_url=url, admin_token=TOKEN)
    assert client.get("/items/7").status_code == 200
    body = orjson.loads(client.get("/health/detailed", headers=AUTH).content)
    check = body["checks"]["database"]
    assert check["status"] == "warn", check
    assert check["output"].startswith(fix)
    assert PASSWORD not in check["output"]
    assert body["status"] == "warn"  # degraded, not failing


def test_a_missing_driver_leaves_a_started_app_ready(monkeypatch):
    from conftest import serve

    monkeypatch.setitem(sys.modules, "psycopg2", None)
    url = f"postgresql+psycopg2://app:{PASSWORD}@127.0.0.1:1/app"

    async def ready(client):
        return (await client.get("/health/ready")).status_code

    assert serve(fastapi_app(database_url=url, admin_token=TOKEN), ready) == 200


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgres"])
def test_postgresql_is_checked_for_real(postgres_url, monkeypatch, scheme):
    from conftest import serve

    # A Heroku/Django-style URL, and no psycopg2: fender checks with the driver it has.
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    postgres_url = scheme + postgres_url.removeprefix("postgresql+psycopg")

    async def scenario(client):
        detailed = await client.get("/health/detailed", headers=AUTH)
        ready = await client.get("/health/ready")
        return orjson.loads(detailed.content), ready.status_code

    body, ready = serve(fastapi_app(database_url=postgres_url, admin_token=TOKEN), scenario)
    assert body["checks"]["database"]["status"] == "pass", body
    assert ready == 200  # started (lifespan), and the database answers
