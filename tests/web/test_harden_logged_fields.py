"""Every client-chosen field of the access event is bounded, on every flavour of app."""

from __future__ import annotations

from fender.http.access import LOGGED_MAX


def test_client_chosen_fields_are_cut_in_the_access_event(make_client, logs):
    client = make_client()
    agent = "U" * 100_000
    client.request("GET", "/items/1", headers={"User-Agent": agent})
    client.request("Q" * 5000, "/items/1")
    first, second = logs.named("request")[-2:]
    assert first["user_agent"] == "U" * LOGGED_MAX["user_agent"] + "...(100000 chars)"
    assert second["method"] == "Q" * LOGGED_MAX["method"] + "...(5000 chars)"
    ours = [line for line in logs.lines if '"logger":"fender' in line]  # (not httpx's own)
    assert ours
    assert all(len(line) < 4000 for line in ours)
