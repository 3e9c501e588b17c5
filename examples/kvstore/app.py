"""The reference service: a key-value store replicated over two nodes, CP or AP, on fender.

Serve it (each worker opens its nodes and runs its own background sync)::

    KV_MODE=cp KV_LOCAL_URL=redis://a:6379/0 KV_PEER_URL=redis://b:6379/0 \\
        fender run examples.kvstore.app:app

+--------+-----------------------+----------------------------------------------------------+
| method | path                  | what                                                     |
+========+=======================+==========================================================+
| GET    | /                     | the service and every endpoint (HTML or JSON by Accept)  |
| PUT    | /kv/<key>             | write ``{"value": "..."}``: key, version, replicated,    |
|        |                       | mode; a read-your-writes token (header and cookie)       |
| GET    | /kv/<key>             | key, value, version, node, staleness_ms, stale           |
| DELETE | /kv/<key>             | a tombstone, answered as a write                         |
| POST   | /write/<key>/<value>  | PUT /kv/<key> for older clients                          |
| GET    | /read/<key>           | GET /kv/<key> for older clients                          |
| GET    | /circuit-breaker      | both nodes' breakers and the store's state               |
| GET    | /openapi.json         | the OpenAPI document of these                            |
+--------+-----------------------+----------------------------------------------------------+

Errors are JSON ``{"error": code, "detail": why}``: 400 (a bad key, value, body or token),
404 (no such key), 413 (too long), 415 (not JSON), 503 (the store cannot, with ``reason`` and
``Retry-After``). fender adds the rest: health (one check a node, ``kv_local`` and
``kv_peer``), ``/metrics``, ``/status``, rate limits, security headers, JSON logs.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from flask import Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from examples.kvstore import metrics
from examples.kvstore.index import OWN, fender_endpoints
from examples.kvstore.nodes import open_node
from examples.kvstore.openapi import TOKEN_COOKIE, TOKEN_HEADER, document
from examples.kvstore.records import Node, NodeUnavailable
from examples.kvstore.settings import load_kv_settings
from examples.kvstore.store import KvStore, Mode, ReadResult, Unavailable, WriteResult
from examples.kvstore.validation import (
    MAX_BODY_BYTES,
    ClientError,
    check_key,
    value_from_body,
    value_from_path,
)
from examples.kvstore.versions import BadToken, decode_token, encode_token, remember
from fender.errors import ConfigurationError
from fender.flask import Fender
from fender.health import CheckResult, Status
from fender.resilience import BreakerRegistry
from fender.settings import Settings

__all__ = ["app", "create_app"]

DESCRIPTION: Final = (
    "A key-value store replicated over two storage nodes (Redis or SQLite), consistent or "
    "available when they are partitioned (KV_MODE), made production-ready by fender."
)
MODE_TEXT: Final[Mapping[str, str]] = {
    "cp": "Consistent when partitioned: a write is acknowledged only when both nodes hold it, "
    "and a read is served only from a node known current; otherwise 503, never a stale or "
    "half-written answer.",
    "ap": "Available when partitioned: a write needs the local node only (the peer catches up "
    "by hinted handoff), and a read always answers, saying how stale it may be.",
}
_STORE: Final = "kvstore"


def create_app(
    *,
    mode: Mode | None = None,
    local_url: str | None = None,
    peer_url: str | None = None,
    local: Node | None = None,
    peer: Node | None = None,
    max_staleness_ms: int | None = None,
    network_timeout_sec: float | None = None,
    breakers: BreakerRegistry | None = None,
    sync_interval: float | None = None,
    start_sync: bool | None = None,
    monotonic: Callable[[], float] | None = None,
    wall_ms: Callable[[], int] | None = None,
    intent_grace: float | None = None,
    testing: bool = False,
    **fender_options: Any,
) -> Flask:
    """The store's Flask app, with fender installed; settings from the environment.

    Args:
        mode, local_url, peer_url: override KV_MODE, KV_LOCAL_URL, KV_PEER_URL.
        local, peer: nodes to use instead of opening the URLs (named ``local`` and ``peer``).
        max_staleness_ms: overrides MAX_STALENESS_MS (fender's setting).
        network_timeout_sec: overrides NETWORK_TIMEOUT_SEC, each node call's timeout.
        breakers: the registry of the nodes' breakers (default fender's: metrics, /status).
        sync_interval: seconds between background syncs (KV_SYNC_INTERVAL_MS by default).
        start_sync: run the background sync in each worker; default: unless ``testing``
            (tests call ``app.extensions["kvstore"].sync_once()``).
        monotonic: the store's clock for staleness (tests).
        wall_ms: the store's wall clock, ms since the epoch, for CP intents' age (tests).
        intent_grace: seconds before the sync undoes a CP write left half-done (default:
            8 node timeouts, at least 5 s: longer than any write in flight).
        testing: Flask's testing flag.
        fender_options: fender's options (``env="development"``...), as for ``Fender(app)``.

    Raises:
        ConfigurationError: a bad setting, naming its variable (``KV_MODE``...).
    """
    kv = load_kv_settings(mode=mode, local_url=local_url, peer_url=peer_url)
    app = Flask(__name__)
    app.testing = testing
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    _add_routes(app)
    # After the routes: fender leaves the app its own /circuit-breaker.
    runtime = Fender().init_app(app, **fender_options)
    settings = runtime.settings
    timeout = settings.network_timeout_sec if network_timeout_sec is None else network_timeout_sec
    staleness = settings.max_staleness_ms if max_staleness_ms is None else max_staleness_ms
    if local is None:
        local = _open("KV_LOCAL_URL", kv.local_url, "local", timeout)
    if peer is None:
        try:
            peer = _open("KV_PEER_URL", kv.peer_url, "peer", timeout)
        except BaseException:
            local.close()
            raise
    for role, node in (("local", local), ("peer", peer)):
        if node.name != role:
            raise ConfigurationError(f"{role}.name", node.name, repr(role))
    store = KvStore(
        kv.mode,
        local,
        peer,
        max_staleness_ms=staleness,
        breakers=breakers,
        sync_interval=kv.sync_interval_ms / 1000 if sync_interval is None else sync_interval,
        monotonic=monotonic or time.monotonic,
        wall_ms=wall_ms,
        intent_grace=max(5.0, 8 * timeout) if intent_grace is None else intent_grace,
    )
    app.extensions[_STORE] = store
    _add_checks(runtime.health, store, timeout=settings.health_timeout)
    if (not testing) if start_sync is None else start_sync:
        # In each worker, at its first request (threads do not survive gunicorn's fork).
        runtime.on_startup(store.start)
    runtime.on_shutdown(store.close)
    return app


def _open(variable: str, url: str, name: str, timeout: float) -> Node:
    try:
        return open_node(url, name=name, timeout=timeout)
    except ValueError as exc:
        raise ConfigurationError(variable, url, str(exc), secret="@" in url) from exc


# --- health -------------------------------------------------------------------------------------


def _add_checks(health: Any, store: KvStore, *, timeout: float) -> None:
    """``kv_local`` (critical) and ``kv_peer`` (critical in CP; in AP a warning: degraded)."""
    cp = store.mode == "cp"
    health.add(
        _node_check(store, "local", down=Status.FAIL),
        name="kv_local",
        critical=True,
        timeout=timeout,
        component_type="datastore",
    )
    health.add(
        _node_check(store, "peer", down=Status.FAIL if cp else Status.WARN),
        name="kv_peer",
        critical=cp,
        timeout=timeout,
        component_type="datastore",
    )


def _node_check(store: KvStore, name: str, *, down: Status) -> Callable[[], CheckResult]:
    consequence = {
        ("local", "cp"): "writes and reads refused",
        ("local", "ap"): "writes refused; reads served by the peer",
        ("peer", "cp"): "writes and reads refused (CP)",
        ("peer", "ap"): "degraded: writes queued for the peer, reads may be stale",
    }[name, store.mode]

    def check() -> CheckResult:
        details = {
            "mode": store.mode,
            "replication_queue": store.queue_length(),
            "staleness_ms": store.staleness_ms(name),
        }
        try:
            store.ping(name)
        except NodeUnavailable as exc:
            return CheckResult(
                down, f"{name} node unreachable ({exc.reason}): {consequence}", details=details
            )
        return CheckResult(Status.PASS, f"{name} node answers", details=details)

    return check


# --- requests -----------------------------------------------------------------------------------


def _store() -> KvStore:
    return cast("KvStore", current_app.extensions[_STORE])


def _json(
    status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error(status: int, error: str, detail: str) -> Response:
    return _json(status, {"error": error, "detail": detail})


def _unavailable(exc: Unavailable, mode: str) -> Response:
    return _json(
        503,
        {"error": "unavailable", "reason": exc.reason, "detail": exc.detail, "mode": mode},
        {"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
    )


def _http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors (404, 405, 413 of MAX_CONTENT_LENGTH...) as JSON, their headers kept."""
    code = exc.code or 500
    names = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    error = names.get(code) or (exc.name or "error").lower().replace(" ", "_")
    detail = (
        f"the body is over {MAX_BODY_BYTES} bytes" if code == 413 else exc.description or ""  # noqa: PLR2004
    )
    response = _error(code, error, detail)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _observed(operation: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Count and time a store operation; turn its refusals into JSON answers."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def observed(**kwargs: str) -> Response:
            store = _store()
            start = time.perf_counter()
            status = "500"  # unless an answer says otherwise: fender turns a crash into a 500
            try:
                try:
                    response = view(store, **kwargs)
                except ClientError as exc:
                    response = _error(exc.status, exc.error, exc.detail)
                except Unavailable as exc:
                    response = _unavailable(exc, store.mode)
                except HTTPException as exc:
                    response = _http_error(exc)
                status = str(response.status_code)
                return response
            finally:
                requests, latency = metrics.observed(store.mode, operation, status)
                requests.inc()
                latency.observe(time.perf_counter() - start)

        return observed

    return decorate


def _presented_token() -> tuple[str | None, str]:
    """The token sent and where: the header wins over the cookie."""
    header = request.headers.get(TOKEN_HEADER)
    if header is not None:
        return header, f"the {TOKEN_HEADER} header"
    return request.cookies.get(TOKEN_COOKIE), f"the {TOKEN_COOKIE} cookie"


def _written(store: KvStore, result: WriteResult) -> Response:
    """A write's answer, with the token of what this client wrote (this write added)."""
    token, _where = _presented_token()
    try:
        versions = decode_token(token) if token else {}
    except BadToken:
        versions = {}  # replaced: a client must be able to get out of a broken cookie
    token = encode_token(remember(versions, result.key, result.version))
    body = {
        "key": result.key,
        "version": result.version,
        "replicated": result.replicated,
        "mode": store.mode,
    }
    response = _json(200, body, {TOKEN_HEADER: token})
    response.set_cookie(
        TOKEN_COOKIE, token, path="/", httponly=True, samesite="Lax", secure=request.is_secure
    )
    return response


def _read(store: KvStore, key: str) -> Response:
    key = check_key(key)
    token, where = _presented_token()
    at_least = None
    if token:
        try:
            at_least = decode_token(token).get(key)
        except BadToken as exc:
            response = _error(
                400,
                "bad_token",
                f"{where} is not a token this service wrote ({exc}): send the one a write "
                "returned, or none",
            )
            if where.endswith("cookie"):
                response.delete_cookie(TOKEN_COOKIE, path="/")
            return response
    result = store.read(key, at_least=at_least)
    headers = _staleness_headers(result)
    record = result.record
    if record is None or record.deleted:
        deleted = record is not None
        detail = f"{key!r} was deleted" if deleted else f"{key!r} was never written"
        body: dict[str, object] = {
            "error": "not_found",
            "detail": detail,
            "key": key,
            "deleted": deleted,
            "staleness_ms": result.staleness_ms,
            "stale": result.stale,
        }
        return _json(404, body, headers)
    return _json(
        200,
        {
            "key": key,
            "value": record.value,
            "version": record.version,
            "node": result.node,
            "staleness_ms": result.staleness_ms,
            "stale": result.stale,
        },
        headers,
    )


def _staleness_headers(result: ReadResult) -> dict[str, str]:
    headers = {"X-Data-Staleness-Ms": str(result.staleness_ms)}
    if result.stale:
        headers["X-Data-Stale"] = "true"
    return headers


@_observed("write")
def put_value(store: KvStore, key: str) -> Response:
    """PUT /kv/<key> with ``{"value": "..."}``."""
    key = check_key(key)
    value = value_from_body(request.content_type, request.get_data(cache=False))
    return _written(store, store.write(key, value))


@_observed("write")
def write_in_path(store: KvStore, key: str, value: str) -> Response:
    """POST /write/<key>/<value>."""
    key = check_key(key)
    value = value_from_path(value, request.environ.get("PATH_INFO", ""))
    return _written(store, store.write(key, value))


@_observed("delete")
def delete_value(store: KvStore, key: str) -> Response:
    """DELETE /kv/<key>."""
    return _written(store, store.delete(check_key(key)))


@_observed("read")
def get_value(store: KvStore, key: str) -> Response:
    """GET /kv/<key> and GET /read/<key>."""
    return _read(store, key)


def circuit_breakers() -> Response:
    """GET /circuit-breaker: the nodes' breakers, as fender's snapshot says, and the store."""
    store = _store()
    breakers = []
    for node, breaker in store.breakers.items():
        snapshot = breaker.snapshot().as_dict()
        breakers.append({"node": node, **snapshot, "state": str(snapshot["state"])})
    return _json(200, {"mode": store.mode, "breakers": breakers, "store": store.describe()})


def index() -> Response:
    """GET /: the service and its endpoints, HTML for browsers, JSON otherwise."""
    store = _store()
    runtime = current_app.extensions["fender"]
    settings: Settings = runtime.settings
    theirs = fender_endpoints(settings, runtime.endpoints)
    nodes = {
        name: {"kind": node["kind"], "state": node["state"]}
        for name, node in store.describe()["nodes"].items()
    }
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    if best == "text/html":
        page = render_template(
            "index.html",
            description=DESCRIPTION,
            mode=store.mode,
            mode_text=MODE_TEXT[store.mode],
            nodes=nodes,
            groups=[("The store's endpoints", OWN), ("fender's endpoints", theirs)],
            stylesheet="/status/style.css" if "/status/style.css" in runtime.endpoints else "",
            base=request.url_root,
        )
        response = Response(page, mimetype="text/html")
    else:
        response = _json(
            200,
            {
                "service": "kvstore",
                "description": DESCRIPTION,
                "mode": store.mode,
                "nodes": nodes,
                "endpoints": [endpoint.as_dict() for endpoint in (*OWN, *theirs)],
            },
        )
    response.vary.add("Accept")
    return response


def openapi() -> Response:
    """GET /openapi.json."""
    from fender import __version__

    return _json(200, document(__version__))


def _add_routes(app: Flask) -> None:
    app.add_url_rule("/", view_func=index, methods=["GET"])
    app.add_url_rule("/openapi.json", view_func=openapi, methods=["GET"])
    app.add_url_rule("/kv/<key>", view_func=put_value, methods=["PUT"])
    app.add_url_rule("/kv/<key>", view_func=get_value, methods=["GET"])
    app.add_url_rule("/kv/<key>", view_func=delete_value, methods=["DELETE"])
    app.add_url_rule("/write/<key>/<value>", view_func=write_in_path, methods=["POST"])
    app.add_url_rule("/read/<key>", endpoint="read_in_path", view_func=get_value, methods=["GET"])
    app.add_url_rule("/circuit-breaker", view_func=circuit_breakers, methods=["GET"])
    app.register_error_handler(HTTPException, _http_error)


app: Flask
"""The service built from the environment; built on first access (see ``__getattr__``)."""
_app: Flask | None = None


def __getattr__(name: str) -> Flask:
    """``app``: the service built from the environment, on first use (``fender run ...:app``).

    Built lazily so that importing :func:`create_app` (tests, tools) opens no node.
    """
    global _app  # noqa: PLW0603  (the one app of the process, built once)
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app
