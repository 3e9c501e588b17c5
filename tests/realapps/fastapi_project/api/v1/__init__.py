from fastapi import APIRouter

from . import auth, items, users

router = APIRouter()
router.include_router(users.router)
router.include_router(items.router)
router.include_router(auth.router)
