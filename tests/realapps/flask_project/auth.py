from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, request, session
from werkzeug.security import check_password_hash, generate_password_hash

import fender
from realapps.flask_project.db import get_db, row

bp = Blueprint("auth", __name__, url_prefix="/auth")

# pbkdf2 with few rounds keeps the corpus fast; the app's behaviour is the same.
HASH_METHOD = "pbkdf2:sha256:1000"


@bp.before_app_request
def load_logged_in_user() -> None:
    user_id = session.get("user_id")
    g.user = None if user_id is None else row("SELECT * FROM user WHERE id = ?", user_id)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        if g.user is None:
            return {"error": "login required"}, 401
        return view(**kwargs)

    return wrapped


@bp.post("/register")
def register() -> Any:
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username or not password:
        return {"error": "username and password are required"}, 400
    db = get_db()
    try:
        db.execute(
            "INSERT INTO user (username, password) VALUES (?, ?)",
            (username, generate_password_hash(password, method=HASH_METHOD)),
        )
        db.commit()
    except db.IntegrityError:
        return {"error": f"user {username} is already registered"}, 409
    return {"registered": username}, 201


@bp.post("/login")
@fender.rate_limit("5/minute")
def login() -> Any:
    user = row("SELECT * FROM user WHERE username = ?", request.form.get("username", ""))
    if user is None or not check_password_hash(user["password"], request.form.get("password", "")):
        return {"error": "incorrect username or password"}, 401
    session.clear()
    session["user_id"] = user["id"]
    return {"logged_in": user["username"]}


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return {"logged_out": True}
