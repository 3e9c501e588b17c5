"""The app of the database outage drill (module path: db_apps): routes over fender.db.engine()."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

import fender
import fender.db

app = FastAPI()


@app.get("/backend")
def backend() -> dict[str, int]:
    """One short query on a pooled connection (a sync route: FastAPI's thread pool)."""
    with fender.db.engine().connect() as connection:
        pid = connection.execute(text("select pg_backend_pid() from pg_sleep(0.01)")).scalar_one()
    return {"pid": pid}


fender.install(app)
