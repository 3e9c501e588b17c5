"""The project's own tests, as its authors wrote them (they know nothing of fender)."""

from __future__ import annotations


def test_create_then_read_a_user(client, auth_headers):
    created = client.post(
        "/api/v1/users", json={"name": "Ada", "email": "ada@example.com"}, headers=auth_headers
    )
    assert created.status_code == 201
    user = created.json()
    read = client.get(f"/api/v1/users/{user['id']}", headers=auth_headers)
    assert read.status_code == 200
    assert read.json() == {"id": user["id"], "name": "Ada", "email": "ada@example.com"}


def test_list_users(client, auth_headers):
    for name in ("Ada", "Grace"):
        client.post(
            "/api/v1/users", json={"name": name, "email": "x@example.com"}, headers=auth_headers
        )
    listed = client.get("/api/v1/users", headers=auth_headers)
    assert [user["name"] for user in listed.json()] == ["Ada", "Grace"]


def test_delete_a_user(client, auth_headers):
    user = client.post(
        "/api/v1/users", json={"name": "Ada", "email": "ada@example.com"}, headers=auth_headers
    ).json()
    assert client.delete(f"/api/v1/users/{user['id']}", headers=auth_headers).status_code == 204
    assert client.get(f"/api/v1/users/{user['id']}", headers=auth_headers).status_code == 404


def test_users_need_the_api_key(client):
    missing = client.get("/api/v1/users")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "invalid or missing API key"}
    assert client.get("/api/v1/users", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/api/v2/users/1").status_code == 401


def test_v2_shows_a_display_name(client, auth_headers):
    user = client.post(
        "/api/v1/users", json={"name": "Ada", "email": "ada@example.com"}, headers=auth_headers
    ).json()
    v2 = client.get(f"/api/v2/users/{user['id']}", headers=auth_headers)
    assert v2.json() == {"id": user["id"], "display_name": "Ada <ada@example.com>"}


def test_items_need_no_key(client):
    assert client.get("/api/v1/items/1").status_code == 404
    put = client.put("/api/v1/items/1", json={"name": "lamp", "price": 12.5})
    assert put.status_code == 200
    assert client.get("/api/v1/items/1").json() == {"name": "lamp", "price": 12.5}


def test_item_validation(client):
    invalid = client.put("/api/v1/items/1", json={"name": "lamp"})
    assert invalid.status_code == 422
    assert client.get("/api/v1/items/not-a-number").status_code == 422


def test_login(client):
    ok = client.post("/api/v1/login", json={"username": "alice", "password": "wonderland"})
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "bearer"
    wrong = client.post("/api/v1/login", json={"username": "alice", "password": "guess"})
    assert wrong.status_code == 401


def test_static_file(client):
    served = client.get("/static/hello.txt")
    assert served.status_code == 200
    assert served.text == "hello from static\n"
    assert client.get("/static/missing.txt").status_code == 404


def test_docs_and_schema(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/users/{user_id}", "/api/v2/users/{user_id}", "/api/v1/login"} <= set(paths)


def test_admin_stats(client, auth_headers):
    client.post(
        "/api/v1/users", json={"name": "Ada", "email": "a@example.com"}, headers=auth_headers
    )
    assert client.get("/admin/stats").json() == {"users": 1, "items": 0}


def test_own_health_route(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "service": "fastapi-project", "store_open": True}


def test_unknown_path_is_404(client):
    assert client.get("/nope").status_code == 404
