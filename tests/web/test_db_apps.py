"""Apps reach fender.db.engine() (and async_engine()) in their routes; fender's readiness check
runs over the same pool, and the app's shutdown closes it."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import event, text

import fender.db
from fender.settings import load_settings

from conftest import serve

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    return request.getfixturevalue("postgres_url")


def create_table(url: str) -> None:
    settings = load_settings({"DATABASE_URL": url}, env_file=None)
    engine = fender.db.engine_from_settings(settings)
    with engine.begin() as connection:
        connection.execute(text("create table users (id integer primary key, name text)"))
        connection.execute(text("insert into users values (1, 'ada'), (2, 'grace')"))
    engine.dispose()


def flask_app(url: str):
    from flask import Flask, jsonify

    from fender.flask import Fender

    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int):
        with fender.db.engine().connect() as connection:
            name = connection.execute(
                text("select name from users where id = :id"), {"id": user_id}
            ).scalar_one()
        return jsonify(name=name)

    Fender(app, env="development", database_url=url, admin_token=TOKEN)
    return app, app.extensions["fender"]


def fastapi_app(url: str):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/users/{user_id}")
    def user(user_id: int) -> dict[str, str]:  # a sync route: FastAPI's thread pool
        with fender.db.engine().connect() as connection:
            query = text("select name from users where id = :id")
            return {"name": connection.execute(query, {"id": user_id}).scalar_one()}

    @app.get("/async/users/{user_id}")
    async def async_user(user_id: int) -> dict[str, str]:
        async with fender.db.async_engine().connect() as connection:
            query = text("select name from users where id = :id")
            return {"name": (await connection.execute(query, {"id": user_id})).scalar_one()}

    runtime = fender.install(app, env="development", database_url=url, admin_token=TOKEN)
    return app, runtime


def checkouts_of(engine) -> list[object]:
    """Every checkout from ``engine``'s pool from now on."""
    seen: list[object] = []
    event.listen(engine, "checkout", lambda _dbapi, record, _proxy: seen.append(record))
    return seen


def test_a_flask_route_reaches_the_shared_engine(database_url):
    create_table(database_url)
    app, runtime = flask_app(database_url)
    client = app.test_client()
    engine = fender.db.engine()  # the installed app's: the one its route and its check use
    # Counted from before the first request: the check may run at start-up (readiness) or in
    # the background refresh, not necessarily at /health/detailed, which serves a snapshot.
    checkouts = checkouts_of(engine)
    assert client.get("/users/1").get_json() == {"name": "ada"}
    body = orjson.loads(client.get("/health/detailed", headers=AUTH).data)
    assert body["checks"]["database"]["status"] == "pass"
    assert len(checkouts) >= 2  # the route's, and the check's from the same pool
    assert engine.pool.checkedout() == 0
    assert engine.pool.checkedin() >= 1
    runtime.shutdown_sync()
    assert engine.pool.checkedin() == 0


def test_fastapi_routes_reach_the_sync_and_the_async_engine(database_url):
    create_table(database_url)
    app, _ = fastapi_app(database_url)
    pools = {}

    # Counted from before the first request (see the Flask test): the route's and the check's.
    checkouts = checkouts_of(fender.db.engine())

    async def scenario(client) -> None:
        assert (await client.get("/users/2")).json() == {"name": "grace"}
        assert (await client.get("/async/users/1")).json() == {"name": "ada"}
        body = orjson.loads((await client.get("/health/detailed", headers=AUTH)).content)
        assert body["checks"]["database"]["status"] == "pass"
        assert len(checkouts) >= 2  # the sync route's, and the check's from the same pool
        pools["sync"] = fender.db.engine().pool
        pools["async"] = fender.db.async_engine().sync_engine.pool
        assert pools["sync"].checkedin() >= 1
        assert pools["async"].checkedin() == 1
        metrics = (await client.get("/metrics")).text
        assert 'db_client_connection_count{pool_name="' in metrics

    serve(app, scenario)
    # Shutdown closed both pools, the async one on the app's own event loop.
    assert (pools["sync"].checkedin(), pools["async"].checkedin()) == (0, 0)
