"""Schemathesis against the store's HTTP API, served for real: no input gets a 5xx.

The store runs under `fender run` (AP mode, two SQLite nodes, fender fully installed, rate limits
off so that the fuzzer is not throttled) and Schemathesis generates requests from the service's
own /openapi.json: valid and invalid keys, values, bodies and tokens. Every answer must be a
documented status with a documented body and content type; none may be a server error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from examples.kvstore.openapi import document
from fender import __version__

from kv_instances import kv_instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("kvfuzz")
    server = kv_instance(
        tmp,
        "fuzz",
        "ap",
        f"sqlite:///{tmp}/local.db",
        f"sqlite:///{tmp}/peer.db",
        ready_path="/health/ready",
    )
    try:
        yield server.url
    finally:
        output = server.output()
        server.stop()
        server.close()
        assert "Traceback" not in output, output[-4000:]


# The document the service serves at /openapi.json (a test below checks they are the same).
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document(__version__))))
# Valid inputs, and inputs that break the document (bad keys, bodies, types): both kinds.
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@schema.parametrize()
@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_gets_a_server_error(case: schemathesis.Case, store_url: str) -> None:
    case.call_and_validate(
        base_url=store_url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_the_fuzzed_document_is_the_one_served(store_url: str) -> None:
    served = httpx.get(f"{store_url}/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(document(__version__)))
