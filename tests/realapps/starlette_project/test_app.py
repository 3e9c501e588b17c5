"""The project's own tests, as its authors wrote them (they know nothing of fender)."""

from __future__ import annotations


def test_homepage(client):
    home = client.get("/")
    assert home.text == "notes service"
    assert home.headers["served-by"] == "notes-1"


def test_the_lifespan_seeds_the_notes(client):
    assert client.get("/api/notes").json() == [{"id": 1, "text": "welcome"}]


def test_create_read_delete_a_note(client):
    created = client.post("/api/notes", json={"text": "buy milk"})
    assert created.status_code == 201
    note_id = created.json()["id"]
    assert client.get(f"/api/notes/{note_id}").json() == {"id": note_id, "text": "buy milk"}
    assert client.delete(f"/api/notes/{note_id}").status_code == 204
    assert client.get(f"/api/notes/{note_id}").status_code == 404


def test_a_path_that_does_not_convert_is_404(client):
    assert client.get("/api/notes/first").status_code == 404


def test_v2(client):
    assert client.get("/v2/notes/1").json() == {"note": {"id": 1, "text": "welcome"}, "version": 2}
    assert client.get("/v2/notes/99").status_code == 404


def test_static(client):
    css = client.get("/static/site.css")
    assert css.status_code == 200
    assert "sans-serif" in css.text
    assert client.get("/static/nope.css").status_code == 404


def test_docs_host(docs_client):
    assert "<h1>Docs</h1>" in docs_client.get("/").text
    assert docs_client.get("/pages/intro").text == "<h1>Getting started</h1>"
    assert docs_client.get("/pages/missing").status_code == 404


def test_docs_pages_only_on_their_host(client):
    assert client.get("/pages/intro").status_code == 404


def test_method_not_allowed(client):
    assert client.put("/api/notes").status_code == 405
