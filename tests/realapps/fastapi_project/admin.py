"""The back office: a FastAPI application of its own, mounted at ``/admin``."""

from __future__ import annotations

from fastapi import FastAPI

from realapps.fastapi_project.store import Store


def create_admin(store: Store) -> FastAPI:
    admin = FastAPI(title="admin", docs_url=None, redoc_url=None, openapi_url=None)

    @admin.get("/stats")
    async def stats() -> dict[str, int]:
        return {"users": len(store.users), "items": len(store.items)}

    return admin
