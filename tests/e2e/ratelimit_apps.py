"""The app the rate-limit end-to-end tests serve with gunicorn (module path: ratelimit_apps).

fender.install does everything: request ids, metrics, fender's endpoints, and the tiered rate
limiter (Redis when REDIS_URL is set, memory as the fallback) on every route.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

import fender

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, int]:
    return {"pid": os.getpid()}


runtime = fender.install(app)
