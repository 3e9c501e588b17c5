"""A FastAPI service with fender: the demo `make demo` serves.

Run it with the production server:
    gunicorn -c python:fender.runtime.gunicorn_conf examples.fastapi_app:app
"""

from __future__ import annotations

from fastapi import FastAPI

import fender

app = FastAPI(title="fender demo")


@fender.health.check(name="catalogue", critical=False, kind="info")
async def catalogue_loaded() -> bool:
    return True


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


fender.install(app)
