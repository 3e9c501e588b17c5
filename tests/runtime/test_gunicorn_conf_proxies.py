"""gunicorn and uvicorn read no forwarding header: fender's edge is the one reader."""

from __future__ import annotations

import importlib

from fender.runtime import gunicorn_conf
from fender.runtime.uvicorn_worker import UvicornWorker


def test_gunicorn_trusts_no_forwarder_whatever_the_settings(monkeypatch):
    monkeypatch.setenv("FENDER_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
    conf = importlib.reload(gunicorn_conf)
    assert conf.forwarded_allow_ips == ""
    # gunicorn trusts a unix-socket peer whatever forwarded_allow_ips says: no scheme headers
    assert conf.secure_scheme_headers == {}


def test_fenders_uvicorn_worker_leaves_proxy_headers_to_fender():
    assert UvicornWorker.CONFIG_KWARGS["proxy_headers"] is False
