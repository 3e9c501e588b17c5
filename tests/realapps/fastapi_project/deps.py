"""Dependencies shared by the routers."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from realapps.fastapi_project.store import Store

API_KEY = os.environ.get("SERVICE_API_KEY", "test-api-key")


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


async def require_api_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
    if x_api_key != API_KEY:
        raise HTTPException(401, "invalid or missing API key", {"WWW-Authenticate": "ApiKey"})
