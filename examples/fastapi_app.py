"""A FastAPI service, as a user writes it: the demo that `make demo` serves."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="fender demo")


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "pass"}


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}
