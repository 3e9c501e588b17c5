from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, request

from realapps.flask_project.auth import login_required
from realapps.flask_project.db import get_db, row

bp = Blueprint("blog", __name__, url_prefix="/blog")

POST_QUERY = (
    "SELECT p.id, title, body, author_id, username"
    " FROM post p JOIN user u ON p.author_id = u.id WHERE p.id = ?"
)


def get_post(post_id: int, *, check_author: bool = True) -> dict[str, Any]:
    post = row(POST_QUERY, post_id)
    if post is None:
        abort(404, f"Post id {post_id} doesn't exist.")
    if check_author and post["author_id"] != g.user["id"]:
        abort(403)
    return dict(post)


@bp.get("/")
def index() -> Any:
    posts = get_db().execute(
        "SELECT p.id, title, body, username FROM post p JOIN user u ON p.author_id = u.id"
        " ORDER BY p.id DESC"
    )
    return [dict(post) for post in posts]


@bp.post("/")
@login_required
def create() -> Any:
    title = request.form.get("title", "")
    if not title:
        return {"error": "title is required"}, 400
    db = get_db()
    cursor = db.execute(
        "INSERT INTO post (title, body, author_id) VALUES (?, ?, ?)",
        (title, request.form.get("body", ""), g.user["id"]),
    )
    db.commit()
    current_app.logger.info("post %s created", cursor.lastrowid)
    return get_post(cursor.lastrowid or 0, check_author=False), 201


@bp.get("/<int:id>")
def show(id: int) -> Any:  # noqa: A002  (Flask's tutorial names the variable id)
    return get_post(id, check_author=False)


@bp.post("/<int:id>/update")
@login_required
def update(id: int) -> Any:  # noqa: A002
    get_post(id)
    db = get_db()
    db.execute(
        "UPDATE post SET title = ?, body = ? WHERE id = ?",
        (request.form["title"], request.form.get("body", ""), id),
    )
    db.commit()
    return get_post(id)


@bp.post("/<int:id>/delete")
@login_required
def delete(id: int) -> Any:  # noqa: A002
    get_post(id)
    db = get_db()
    db.execute("DELETE FROM post WHERE id = ?", (id,))
    db.commit()
    return {"deleted": id}
