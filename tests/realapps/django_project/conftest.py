from __future__ import annotations

import httpx
import pytest

from realapps.django_project import views


@pytest.fixture
def client(with_fender):
    from realapps.django_project.wsgi import get_application  # sets DJANGO_SETTINGS_MODULE

    views.reset()
    transport = httpx.WSGITransport(app=get_application())
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        yield client
