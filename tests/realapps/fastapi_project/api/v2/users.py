from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from realapps.fastapi_project.deps import StoreDep, require_api_key
from realapps.fastapi_project.schemas import UserV2

router = APIRouter(prefix="/users", tags=["users v2"], dependencies=[Depends(require_api_key)])


@router.get("/{user_id}")
async def get_user(user_id: int, store: StoreDep) -> UserV2:
    if user_id not in store.users:
        raise HTTPException(404, "user not found")
    user = store.users[user_id]
    return UserV2(id=user_id, display_name=f"{user['name']} <{user['email']}>")
