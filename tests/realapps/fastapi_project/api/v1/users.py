from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response

from realapps.fastapi_project.deps import StoreDep, require_api_key
from realapps.fastapi_project.schemas import User, UserIn

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(require_api_key)])


@router.get("")
async def list_users(store: StoreDep) -> list[User]:
    return [User.model_validate(user) for user in store.users.values()]


@router.post("", status_code=201)
async def create_user(body: UserIn, store: StoreDep) -> User:
    return User.model_validate(store.add_user(body.name, body.email))


@router.get("/{user_id}")
async def get_user(user_id: int, store: StoreDep) -> User:
    if user_id not in store.users:
        raise HTTPException(404, "user not found")
    return User.model_validate(store.users[user_id])


@router.delete("/{user_id}", status_code=204, response_class=Response)
async def delete_user(user_id: int, store: StoreDep) -> Response:
    if store.users.pop(user_id, None) is None:
        raise HTTPException(404, "user not found")
    return Response(status_code=204)
