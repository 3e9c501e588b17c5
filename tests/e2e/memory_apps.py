"""An app that grows on request, for the memory guard's end-to-end test."""

from __future__ import annotations

import os

from fastapi import FastAPI

import fender

app = FastAPI()
_held: list[bytes] = []


@app.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.post("/grow")
async def grow(mb: int) -> dict[str, int]:
    _held.append(b"\x01" * (mb * 2**20))  # written, so resident (calloc'd zeros would not be)
    return {"pid": os.getpid(), "held_mb": sum(len(b) for b in _held) // 2**20}


fender.install(app)
