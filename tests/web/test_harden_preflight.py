"""Preflights (OPTIONS the framework answers by itself) do not count against a route's limit.

The adversarial pass: on Flask, after 3 CORS preflights only 2 of 5 logins passed a
5/minute limit, as Flask's automatic OPTIONS ran the limiter like the view.
"""

from __future__ import annotations

import asyncio

import httpx

from fender.http.ratelimit import rate_limit

OPTIONS = {"env": "development", "rate_limit_enabled": True}


def test_flask_automatic_options_do_not_count_against_the_limit():
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)

    @app.post("/login")
    @rate_limit("5/minute")
    def login() -> dict[str, str]:
        return {"ok": "yes"}

    Fender(app, **OPTIONS)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://x") as client:
        preflights = [client.options("/login") for _ in range(3)]
        logins = [client.post("/login").status_code for _ in range(6)]
    assert {p.status_code for p in preflights} == {200}
    assert "POST" in preflights[0].headers["allow"]
    assert logins == [200] * 5 + [429]


def test_flask_options_a_view_declares_itself_still_count():
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)

    @app.route("/probe", methods=["OPTIONS"])
    @rate_limit("2/minute")
    def probe() -> dict[str, str]:
        return {"ok": "yes"}

    Fender(app, **OPTIONS)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://x") as client:
        codes = [client.options("/probe").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_starlette_options_to_a_route_without_it_do_not_count():
    from fastapi import FastAPI

    import fender

    app = FastAPI()

    @app.post("/login")
    @rate_limit("5/minute")
    async def login() -> dict[str, str]:
        return {"ok": "yes"}

    fender.install(app, **OPTIONS)

    async def scenario() -> tuple[list[int], list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            preflights = [(await http.options("/login")).status_code for _ in range(3)]
            logins = [(await http.post("/login")).status_code for _ in range(6)]
        return preflights, logins

    preflights, logins = asyncio.run(scenario())
    assert preflights == [405] * 3
    assert logins == [200] * 5 + [429]
