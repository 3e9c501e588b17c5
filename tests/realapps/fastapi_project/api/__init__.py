"""Every version of the API, mounted by ``main`` under ``/api``."""

from fastapi import APIRouter

from . import v1, v2

api_router = APIRouter()
api_router.include_router(v1.router, prefix="/v1")
api_router.include_router(v2.router, prefix="/v2")
