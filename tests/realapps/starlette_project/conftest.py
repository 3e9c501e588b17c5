from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from realapps.starlette_project.app import create_app


@pytest.fixture
def app(with_fender):
    return create_app()


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


@pytest.fixture
def docs_client(app):
    with TestClient(app, base_url="http://docs.example.com") as client:
        yield client
