"""A default install loads nothing it does not use (issue 16: worker memory over the bare app).

Each case runs in a fresh interpreter: a production app (JSON logs, no REDIS_URL, no
DATABASE_URL) with fender installed answers one request, then the process lists the top-level
packages it loaded. Memory itself is measured by the benchmarks in bench/, never here.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

# Packages a default install has no use for. opentelemetry came with redis-py; rich and
# pygments with structlog's console renderer; sqlalchemy comes only with a database; tenacity
# only with a retry policy.
UNUSED = ("opentelemetry", "pygments", "redis", "rich", "sqlalchemy", "tenacity")

FLASK = """
from fender.flask import Fender
from flask import Flask

app = Flask(__name__)
app.get("/")(lambda: {"ok": True})
Fender(app)
assert app.test_client().get("/").status_code == 200
"""

WSGI = """
import io
from wsgiref.util import setup_testing_defaults
from fender.wsgi import wrap

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

wrapped = wrap(app)
environ = {"wsgi.input": io.BytesIO()}
setup_testing_defaults(environ)
statuses = []
body = b"".join(wrapped(environ, lambda status, headers, exc_info=None: statuses.append(status)))
assert statuses[0].startswith("200"), statuses
"""

FASTAPI = """
import asyncio
import sys
import fastapi
import httpx

bare = {name.partition(".")[0] for name in sys.modules}
from fender import install

app = fastapi.FastAPI()
app.get("/")(lambda: {"ok": True})
install(app)

async def one_request():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/")).status_code == 200

asyncio.run(one_request())
"""

REPORT = """
import json, sys
print("LOADED", json.dumps(sorted({name.partition(".")[0] for name in sys.modules} - BARE)))
"""


def loaded(script: str, *, less_bare: bool = False) -> set[str]:
    """The top-level packages ``script`` leaves loaded (less the bare framework's with
    ``less_bare``: the script then names them ``bare``), in a production environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FENDER_", "PYTEST_"))}
    env.update(
        FENDER_ENV="production",
        FENDER_TESTING="0",
        FENDER_LOG_FORMAT="json",
        SECRET_KEY=secrets.token_urlsafe(48),
    )
    for name in ("REDIS_URL", "DATABASE_URL", "APP_ENV", "FLASK_ENV", "FLASK_DEBUG"):
        env.pop(name, None)
    report = REPORT.replace("BARE", "bare" if less_bare else "set()")
    done = subprocess.run(
        [sys.executable, "-c", script + report],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Log lines may follow (fender's shutdown at exit): the report is the line marked.
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    return set(json.loads(line.removeprefix("LOADED ")))


@pytest.fixture(scope="module")
def flask_loaded() -> set[str]:
    return loaded(FLASK)


@pytest.fixture(scope="module")
def wsgi_loaded() -> set[str]:
    return loaded(WSGI)


@pytest.fixture(scope="module")
def fastapi_loaded() -> set[str]:
    return loaded(FASTAPI, less_bare=True)


@pytest.mark.parametrize("package", UNUSED)
def test_a_flask_app_with_fender_loads_no_unused_package(flask_loaded, package):
    assert package not in flask_loaded


@pytest.mark.parametrize("package", UNUSED)
def test_a_wsgi_app_wrapped_loads_no_unused_package(wsgi_loaded, package):
    assert package not in wsgi_loaded


# opentelemetry is not among them: fastapi.telemetry imports it with the bare framework.
@pytest.mark.parametrize("package", tuple(p for p in UNUSED if p != "opentelemetry"))
def test_a_fastapi_app_with_fender_loads_no_unused_package(fastapi_loaded, package):
    assert package not in fastapi_loaded


def test_the_cases_run_what_they_claim(flask_loaded, fastapi_loaded):
    """The guards above would pass on a script that failed to import fender at all."""
    assert {"fender", "flask", "structlog"} <= flask_loaded
    assert {"fender", "structlog"} <= fastapi_loaded
