"""The OpenAPI 3.0 document of the store's own endpoints, written by hand (``GET /openapi.json``).

Fuzzers (schemathesis) generate requests from it and check the answers against it, so each
limit here is the one :mod:`examples.kvstore.validation` enforces. fender's endpoints
(``/health``, ``/metrics``...) are fender's and not described here; its rate limit is: any
operation may answer 429.
"""

from __future__ import annotations

from typing import Any, Final

from examples.kvstore.store import REASONS
from examples.kvstore.validation import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    MAX_PATH_VALUE_CHARS,
    MAX_VALUE_CHARS,
    PATH_VALUE_PATTERN,
)

__all__ = ["TOKEN_COOKIE", "TOKEN_HEADER", "UNAVAILABLE_REASONS", "document"]

TOKEN_COOKIE: Final = "kv_token"  # noqa: S105  (a cookie name, not a secret)
TOKEN_HEADER: Final = "X-KV-Token"  # noqa: S105  (a header name)
UNAVAILABLE_REASONS: Final = REASONS
"""The ``reason`` codes of a 503 (see :class:`examples.kvstore.store.Unavailable`)."""

_JSON: Final = "application/json"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: str, description: str, **extra: Any) -> dict[str, Any]:
    content = {_JSON: {"schema": _ref("schemas", schema)}}
    return {"description": description, "content": content, **extra}


def _errors(*codes: str) -> dict[str, Any]:
    """The error responses an operation may give, by status code."""
    return {code: _ref("responses", f"E{code}") for code in codes}


def _read(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": (
            "Read-your-writes: with the token of an earlier write (header or cookie, the "
            "header winning) that names this key, the value is served from a node holding at "
            "least that version, or the answer is 503 version_not_available. In AP mode the "
            "answer says how stale it may be; past MAX_STALENESS_MS it says stale."
        ),
        "parameters": [
            _ref("parameters", "Key"),
            _ref("parameters", "TokenHeader"),
            _ref("parameters", "TokenCookie"),
        ],
        "responses": {
            "200": _json(
                "ReadResult",
                "The value.",
                headers={
                    "X-Data-Staleness-Ms": _ref("headers", "Staleness"),
                    "X-Data-Stale": _ref("headers", "Stale"),
                },
            ),
            "404": _json(
                "NotFound",
                "The key was never written, or was deleted.",
                headers={
                    "X-Data-Staleness-Ms": _ref("headers", "StalenessIfRead"),
                    "X-Data-Stale": _ref("headers", "Stale"),
                },
            ),
            **_errors("400", "413", "429", "503"),
        },
    }


def _write(operation_id: str, summary: str, *, body: bool, extra: list[Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": (
            "CP: acknowledged once both nodes hold it, else 503 and nothing written. AP: "
            "acknowledged once the local node holds it; the peer gets it now or when it "
            "returns (replicated says which). The answer carries a read-your-writes token "
            f"({TOKEN_HEADER} header and {TOKEN_COOKIE} cookie), which adds this write to the "
            "token presented (a malformed one presented is replaced)."
        ),
        "parameters": [
            _ref("parameters", "Key"),
            *extra,
            _ref("parameters", "TokenHeader"),
            _ref("parameters", "TokenCookie"),
        ],
        "responses": {
            "200": _json(
                "WriteResult",
                "Acknowledged.",
                headers={
                    TOKEN_HEADER: _ref("headers", "Token"),
                    "Set-Cookie": _ref("headers", "TokenCookie"),
                },
            ),
            **_errors("400", "413", *(("415",) if body else ()), "429", "503"),
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _ref("schemas", "ValueBody")}},
        }
    return operation


def _schemas() -> dict[str, Any]:
    text = {"type": "string"}
    count = {"type": "integer", "minimum": 0}
    return {
        "ValueBody": {
            "type": "object",
            "required": ["value"],
            "additionalProperties": False,
            "properties": {
                "value": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_CHARS}
            },
        },
        "WriteResult": {
            "type": "object",
            "required": ["key", "version", "replicated", "mode"],
            "properties": {
                "key": text,
                "version": {**count, "description": "The write's version (a hybrid clock)."},
                "replicated": {
                    "type": "boolean",
                    "description": "The peer node holds it already (always true in CP).",
                },
                "mode": {"type": "string", "enum": ["cp", "ap"]},
            },
        },
        "ReadResult": {
            "type": "object",
            "required": ["key", "value", "version", "node", "staleness_ms", "stale"],
            "properties": {
                "key": text,
                "value": text,
                "version": count,
                "node": {"type": "string", "enum": ["local", "peer"]},
                "staleness_ms": {
                    **count,
                    "description": "Milliseconds since the nodes were last known in sync "
                    "(0 in CP mode).",
                },
                "stale": {"type": "boolean", "description": "staleness_ms > MAX_STALENESS_MS"},
            },
        },
        "NotFound": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "enum": ["not_found"]},
                "detail": text,
                "key": text,
                "deleted": {"type": "boolean"},
                "staleness_ms": count,
                "stale": {"type": "boolean"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {**text, "description": "A stable code (key_invalid, bad_json...)."},
                "detail": {**text, "description": "What is wrong, for a person."},
            },
        },
        "Unavailable": {
            "type": "object",
            "required": ["error", "reason", "detail", "mode"],
            "properties": {
                "error": {"type": "string", "enum": ["unavailable"]},
                "reason": {"type": "string", "enum": list(UNAVAILABLE_REASONS)},
                "detail": text,
                "mode": {"type": "string", "enum": ["cp", "ap"]},
            },
        },
        "Index": {
            "type": "object",
            "required": ["service", "description", "mode", "nodes", "endpoints"],
            "properties": {
                "service": text,
                "description": text,
                "mode": {"type": "string", "enum": ["cp", "ap"]},
                "nodes": {
                    "type": "object",
                    "description": "Each node's kind (redis, sqlite) and breaker state; "
                    "no address (the index is public).",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["kind", "state"],
                        "properties": {"kind": text, "state": text},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["method", "path", "description", "protected"],
                        "properties": {
                            "method": text,
                            "path": text,
                            "description": text,
                            "protected": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "CircuitBreakers": {
            "type": "object",
            "required": ["mode", "breakers", "store"],
            "properties": {
                "mode": {"type": "string", "enum": ["cp", "ap"]},
                "breakers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["node", "name", "state", "retry_after"],
                        "properties": {
                            "node": {"type": "string", "enum": ["local", "peer"]},
                            "name": text,
                            "state": text,
                            "retry_after": {"type": "number", "minimum": 0},
                        },
                    },
                },
                "store": {"type": "object"},
            },
        },
    }


def _components() -> dict[str, Any]:
    def error(description: str, schema: str = "Error", **extra: Any) -> dict[str, Any]:
        return _json(schema, description, **extra)

    return {
        "parameters": {
            "Key": {
                "name": "key",
                "in": "path",
                "required": True,
                "description": f"1-{MAX_KEY_LENGTH} characters of A-Z a-z 0-9 . _ : - "
                "(not . or ..); longer is 413, other characters 400.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": KEY_PATTERN,
                },
            },
            "PathValue": {
                "name": "value",
                "in": "path",
                "required": True,
                "description": f"1-{MAX_PATH_VALUE_CHARS} characters of UTF-8 text without "
                "'/' (not . or ..); longer values go in PUT /kv/{key}.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_PATH_VALUE_CHARS,
                    "pattern": PATH_VALUE_PATTERN,
                },
            },
            "TokenHeader": {
                "name": TOKEN_HEADER,
                "in": "header",
                "required": False,
                "description": "A read-your-writes token a write returned (wins over the "
                "cookie); a malformed one makes a read 400.",
                "schema": {"type": "string"},
            },
            "TokenCookie": {
                "name": TOKEN_COOKIE,
                "in": "cookie",
                "required": False,
                "description": f"The same token, as the cookie a write set (read when no "
                f"{TOKEN_HEADER} header is sent).",
                "schema": {"type": "string"},
            },
        },
        "headers": {
            "Token": {
                "description": "The read-your-writes token: present it to later reads.",
                "required": True,
                "schema": {"type": "string"},
            },
            "TokenCookie": {
                "description": f"{TOKEN_COOKIE}=<token>; HttpOnly; SameSite=Lax; Path=/",
                "required": True,
                "schema": {"type": "string"},
            },
            "Staleness": {
                "description": "staleness_ms of the answer.",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            },
            "StalenessIfRead": {
                "description": "staleness_ms, when the store answered (not for a path that "
                "no route matches).",
                "schema": {"type": "integer", "minimum": 0},
            },
            "Stale": {
                "description": "Sent (true) when staleness_ms > MAX_STALENESS_MS (AP mode).",
                "schema": {"type": "string", "enum": ["true"]},
            },
            "RetryAfter": {
                "description": "Seconds to wait before trying again.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            },
        },
        "responses": {
            "E400": error("A bad key, value, body or token; detail names the problem."),
            "E413": error("The key, the value or the body is too long."),
            "E415": error("The body is not application/json."),
            "E429": error(
                "fender's rate limit (error rate_limited).",
                headers={"Retry-After": _ref("headers", "RetryAfter")},
            ),
            "E503": {
                "description": "The store cannot do it now (CP refuses rather than diverge; "
                "a version asked for is not reachable); or fender's rate-limit store is down "
                "(error rate_limit_unavailable).",
                "headers": {"Retry-After": _ref("headers", "RetryAfter")},
                "content": {
                    _JSON: {
                        "schema": {
                            "anyOf": [_ref("schemas", "Unavailable"), _ref("schemas", "Error")]
                        }
                    }
                },
            },
        },
        "schemas": _schemas(),
    }


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document; ``version`` is the service's (``info.version``)."""
    path_value = _ref("parameters", "PathValue")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "kvstore",
            "version": version,
            "description": (
                "A key-value store replicated over two storage nodes, CP or AP (KV_MODE), "
                "served with fender. fender's own endpoints (/health, /metrics, /status) are "
                "not described here."
            ),
        },
        "paths": {
            "/": {
                "get": {
                    "operationId": "index",
                    "summary": "What the service is, and every endpoint (HTML or JSON by Accept).",
                    "responses": {
                        "200": {
                            "description": "The index.",
                            "content": {
                                _JSON: {"schema": _ref("schemas", "Index")},
                                "text/html": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors("429"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0",
                            "content": {_JSON: {"schema": {"type": "object"}}},
                        },
                        **_errors("429"),
                    },
                }
            },
            "/kv/{key}": {
                "put": _write("putValue", "Write a value.", body=True, extra=[]),
                "get": _read("getValue", "Read a value."),
                "delete": _write(
                    "deleteValue",
                    "Delete a key (a tombstone, replicated like a write).",
                    body=False,
                    extra=[],
                ),
            },
            "/write/{key}/{value}": {
                "post": _write(
                    "writeInPath",
                    "Write a value given in the path (the form older clients use).",
                    body=False,
                    extra=[path_value],
                )
            },
            "/read/{key}": {
                "get": _read("readInPath", "Read a value (the form older clients use)."),
            },
            "/circuit-breaker": {
                "get": {
                    "operationId": "circuitBreakers",
                    "summary": "The breakers of both nodes and the store's state.",
                    "responses": {
                        "200": _json("CircuitBreakers", "The breakers."),
                        **_errors("429"),
                    },
                }
            },
        },
        "components": _components(),
    }
