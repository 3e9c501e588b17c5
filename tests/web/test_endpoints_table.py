"""The table of fender's paths names the variables behind a path taken twice."""

from __future__ import annotations

import pytest

from fender.errors import ConfigurationError
from fender.http.endpoints import Endpoints, Request, Response, drive_sync

OK = Response(200, (), b"ok")


def endpoint(_request):
    return OK


def test_a_path_taken_twice_names_both_variables():
    table = Endpoints()
    table.add("/health", endpoint, setting="FENDER_METRICS_PATH")
    with pytest.raises(ConfigurationError) as raised:
        table.add("/health", endpoint, setting="FENDER_HEALTH_PREFIX")
    assert raised.value.field == "FENDER_HEALTH_PREFIX"
    assert raised.value.value == "/health"
    assert "served for FENDER_METRICS_PATH" in raised.value.expected


def test_a_fixed_path_taken_again_says_so():
    table = Endpoints()
    table.add("/status", endpoint)
    with pytest.raises(ConfigurationError) as raised:
        table.add("/status", endpoint, setting="FENDER_METRICS_PATH")
    assert raised.value.field == "FENDER_METRICS_PATH"
    assert "/status is a fixed path" in raised.value.expected


def test_without_a_setting_the_error_names_the_path():
    table = Endpoints()
    table.add("/x", endpoint)
    with pytest.raises(ConfigurationError) as raised:
        table.add("/x", endpoint)
    assert raised.value.field == "path"


def test_a_relative_path_names_its_setting():
    with pytest.raises(ConfigurationError) as raised:
        Endpoints().add("metrics", endpoint, setting="FENDER_METRICS_PATH")
    assert raised.value.field == "FENDER_METRICS_PATH"


def test_a_refused_path_leaves_the_first_endpoint_in_place():
    table = Endpoints()
    table.add("/x", endpoint, setting="A")
    with pytest.raises(ConfigurationError):
        table.add("/x", lambda _request: Response(500, (), b""), setting="B")
    assert table.paths == ("/x",)
    assert drive_sync(table.handle(Request("GET", "/x", {}))) is OK
