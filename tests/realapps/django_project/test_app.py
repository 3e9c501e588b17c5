"""The project's own tests, through its WSGI application (they know nothing of fender)."""

from __future__ import annotations


def test_index(client):
    assert client.get("/polls/").json() == {"polls": list(range(1, 21))}


def test_detail(client):
    assert client.get("/polls/3/").json() == {"id": 3, "question": "Question 3?", "votes": 0}


def test_unknown_poll_is_404(client):
    assert client.get("/polls/999/").status_code == 404


def test_append_slash_redirects(client):
    answer = client.get("/polls/3")
    assert answer.status_code == 301
    assert answer.headers["location"] == "/polls/3/"


def test_vote(client):
    assert client.post("/polls/2/vote/", json={"votes": 2}).json()["votes"] == 2
    assert client.get("/polls/2/").json()["votes"] == 2


def test_vote_is_post_only(client):
    assert client.get("/polls/2/vote/").status_code == 405


def test_unknown_path_is_404(client):
    assert client.get("/nowhere/").status_code == 404


def test_host_not_allowed(client):
    assert client.get("/polls/", headers={"Host": "evil.example.com"}).status_code == 400
