"""DATABASE_URL set: every flavour starts, and the database is a readiness check that tells."""

from __future__ import annotations

import orjson
import pytest

import fender
from fender.settings import load_settings

from apps import fastapi_app

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


@pytest.mark.postgres
def test_postgresql_is_checked_for_real(postgres_url):
    from conftest import serve

    async def scenario(client):
        detailed = await client.get("/health/detailed", headers=AUTH)
        ready = await client.get("/health/ready")
        return orjson.loads(detailed.content), ready.status_code

    body, ready = serve(fastapi_app(database_url=postgres_url, admin_token=TOKEN), scenario)
    assert body["checks"]["database"]["status"] == "pass", body
    assert ready == 200  # started (lifespan), and the database answers
