"""Rate-limit rejections past FENDER_SECURITY_EVENT_THRESHOLD a minute: one security event.

One ``rate_limit_abuse`` per key and minute, not one per request, in bounded memory.
"""

from __future__ import annotations

import asyncio

import httpx

import fender
from fender._clock import ManualClock
from fender.http.ratelimit import RejectionWatch, rate_limit

from conftest import sample


def test_one_event_per_key_and_minute_at_the_threshold():
    clock = ManualClock()
    watch = RejectionWatch(3, clock=clock)
    assert [watch.rejected("a") for _ in range(6)] == [False, False, True, False, False, False]
    assert [watch.rejected("b") for _ in range(3)] == [False, False, True]
    clock.advance(60)
    assert [watch.rejected("a") for _ in range(3)] == [False, False, True]


def test_the_watch_keeps_a_bounded_number_of_keys():
    watch = RejectionWatch(1, clock=ManualClock(), max_keys=2)
    assert watch.rejected("a")
    assert watch.rejected("b")
    assert not watch.rejected("c")  # not counted: the minute's table is full
    assert len(watch._counts) == 2


def test_a_client_hammering_login_makes_one_event(logs):
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/login")
    @rate_limit("1/minute")
    async def login() -> dict[str, str]:
        return {}

    fender.install(app, env="development", rate_limit_enabled=True, security_event_threshold=3)
    before = sample("security_events_total", type="rate_limit_abuse")

    async def hammer() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            return [(await http.post("/login")).status_code for _ in range(12)]

    assert asyncio.run(hammer()) == [200] + [429] * 11
    events = [e for e in logs.named("security_event") if e["type"] == "rate_limit_abuse"]
    assert len(events) == 1
    assert "198.51.100.4" in events[0]["key"]
    assert events[0]["policy"] == "/login"
    assert sample("security_events_total", type="rate_limit_abuse") - before == 1


def test_flask_rejections_are_watched_too(logs):
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)

    @app.post("/login")
    @rate_limit("1/minute")
    def login() -> dict[str, str]:
        return {}

    Fender(app, env="development", rate_limit_enabled=True, security_event_threshold=2)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://x") as client:
        codes = [client.post("/login").status_code for _ in range(6)]
    assert codes == [200] + [429] * 5
    events = [e for e in logs.named("security_event") if e["type"] == "rate_limit_abuse"]
    assert len(events) == 1
