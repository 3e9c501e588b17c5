"""The project's own tests, in the style of Flask's tutorial (they know nothing of fender)."""

from __future__ import annotations

import pytest
from flask import g, session

from realapps.flask_project import create_app
from realapps.flask_project.db import get_db


def test_config(with_fender):
    assert not create_app().testing
    assert create_app({"TESTING": True}).testing


def test_status(client):
    assert client.get("/status").json == {"status": "ok", "app": "flask-project"}


def test_register(client, app):
    assert client.post("/auth/register", data={"username": "a", "password": "a"}).status_code == 201
    with app.app_context():
        assert get_db().execute("SELECT * FROM user WHERE username = 'a'").fetchone() is not None


@pytest.mark.parametrize(
    ("username", "password", "status"),
    [("", "", 400), ("a", "", 400), ("test", "test", 409)],
)
def test_register_validates_input(client, username, password, status):
    answer = client.post("/auth/register", data={"username": username, "password": password})
    assert answer.status_code == status


def test_login(client, auth):
    assert auth.login().status_code == 200
    with client:
        client.get("/blog/")
        assert session["user_id"] == 1
        assert g.user["username"] == "test"


@pytest.mark.parametrize(("username", "password"), [("a", "test"), ("test", "a")])
def test_login_validates_input(auth, username, password):
    answer = auth.login(username, password)
    assert answer.status_code == 401
    assert answer.json == {"error": "incorrect username or password"}


def test_logout(client, auth):
    auth.login()
    with client:
        auth.logout()
        assert "user_id" not in session


def test_index(client):
    posts = client.get("/blog/").json
    assert posts == [{"id": 1, "title": "test title", "body": "test body", "username": "test"}]


def test_show(client):
    assert client.get("/blog/1").json["title"] == "test title"
    assert client.get("/blog/2").status_code == 404


@pytest.mark.parametrize("path", ["/blog/", "/blog/1/update", "/blog/1/delete"])
def test_login_required(client, path):
    assert client.post(path, data={"title": "x"}).status_code == 401


def test_author_required(app, client, auth):
    with app.app_context():
        db = get_db()
        db.execute("UPDATE post SET author_id = 2 WHERE id = 1")
        db.commit()
    auth.login()
    assert client.post("/blog/1/update", data={"title": "x"}).status_code == 403
    assert client.post("/blog/1/delete").status_code == 403


def test_create_update_delete(client, auth, app):
    auth.login()
    created = client.post("/blog/", data={"title": "created", "body": ""})
    assert created.status_code == 201
    post_id = created.json["id"]
    assert client.post(f"/blog/{post_id}/update", data={"title": "updated"}).json["title"] == (
        "updated"
    )
    assert client.post(f"/blog/{post_id}/delete").json == {"deleted": post_id}
    with app.app_context():
        assert get_db().execute("SELECT COUNT(id) FROM post").fetchone()[0] == 1


def test_api_item(client):
    assert client.get("/api/v1/items/1").json == {"name": "lamp", "price": 12.5}
    assert client.get("/api/v1/items/2").status_code == 404


def test_static(client):
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert b"color" in css.data
    css.close()
