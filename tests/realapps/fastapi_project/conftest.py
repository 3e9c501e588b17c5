from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from realapps.fastapi_project.deps import API_KEY
from realapps.fastapi_project.main import create_app


@pytest.fixture
def app(with_fender):
    return create_app()


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


@pytest.fixture
def auth_headers():
    return {"X-API-Key": API_KEY}
