from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from realapps.flask_project import create_app
from realapps.flask_project.auth import HASH_METHOD
from realapps.flask_project.db import get_db, init_db


@pytest.fixture
def app(with_fender, tmp_path):
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "test.sqlite")})
    with app.app_context():
        init_db()
        db = get_db()
        for username in ("test", "other"):
            db.execute(
                "INSERT INTO user (username, password) VALUES (?, ?)",
                (username, generate_password_hash(username, method=HASH_METHOD)),
            )
        db.execute(
            "INSERT INTO post (title, body, author_id) VALUES ('test title', 'test body', 1)"
        )
        db.commit()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, username="test", password="test"):
        return self._client.post("/auth/login", data={"username": username, "password": password})

    def logout(self):
        return self._client.post("/auth/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)
