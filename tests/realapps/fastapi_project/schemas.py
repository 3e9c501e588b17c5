from __future__ import annotations

from pydantic import BaseModel


class UserIn(BaseModel):
    name: str
    email: str


class User(UserIn):
    id: int


class UserV2(BaseModel):
    id: int
    display_name: str


class Item(BaseModel):
    name: str
    price: float


class Credentials(BaseModel):
    username: str
    password: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
