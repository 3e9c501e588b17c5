from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, HTTPException

import fender
from realapps.fastapi_project.deps import StoreDep
from realapps.fastapi_project.schemas import Credentials, Token

router = APIRouter(tags=["auth"])


@router.post("/login")
@fender.rate_limit("5/minute")
async def login(credentials: Credentials, store: StoreDep) -> Token:
    expected = store.passwords.get(credentials.username, "")
    if not expected or not hmac.compare_digest(expected, credentials.password):
        raise HTTPException(401, "wrong username or password")
    return Token(access_token=secrets.token_urlsafe(16))
