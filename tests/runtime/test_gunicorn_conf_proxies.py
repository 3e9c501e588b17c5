"""gunicorn_conf hands gunicorn and uvicorn the proxies fender trusts, and none by default."""

from __future__ import annotations

import pytest

from fender.runtime.gunicorn_conf import trusted_forwarders
from fender.settings import load_settings


@pytest.fixture(autouse=True)
def _no_forwarded_allow_ips(monkeypatch):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)


def test_nobody_is_trusted_by_default():
    assert trusted_forwarders(load_settings({}, env_file=None)) == ""


def test_the_trusted_proxies_are_passed_on_in_gunicorn_s_strict_form():
    settings = load_settings({"FENDER_TRUSTED_PROXIES": "10.0.0.1/8, fd00::/8,"}, env_file=None)
    assert trusted_forwarders(settings) == "10.0.0.0/8,fd00::/8"


def test_hops_alone_trust_no_address():
    assert trusted_forwarders(load_settings({"FENDER_TRUSTED_HOPS": "2"}, env_file=None)) == ""


def test_a_users_forwarded_allow_ips_wins(monkeypatch):
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
    settings = load_settings({"FENDER_TRUSTED_PROXIES": "10.0.0.0/8"}, env_file=None)
    assert trusted_forwarders(settings) == "192.0.2.1"


def test_unreadable_settings_trust_nobody():
    assert trusted_forwarders(None) == ""
