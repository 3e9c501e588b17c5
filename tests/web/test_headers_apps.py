"""Security headers on real apps: FastAPI (router, mount), Flask (blueprint, factory), bare ASGI
and WSGI; every response, errors and fender's own endpoints included; nonces; overrides."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response

import fender
from fender.security import CSP, SecurityHeaders, security_headers

OPTIONS: dict[str, Any] = {"env": "development", "log_format": "json"}
NONCED = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
    "upgrade-insecure-requests"
)
OWN_CSP = "default-src 'none'; img-src https://img.example"


def defaults(*, https: bool, profile: str = "web") -> dict[str, str]:
    compiled = SecurityHeaders(profile=profile).default  # type: ignore[arg-type]
    return {k.lower(): v for k, v in (compiled.wsgi_https if https else compiled.wsgi_http)}


# --- the apps ------------------------------------------------------------------------------


def fastapi_app(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="k" * 40, session_cookie="sid")

    @app.get("/")
    async def root(request: Request) -> dict[str, Any]:
        return {"nonce": getattr(request.state, "csp_nonce", None)}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    @app.get("/own-csp")
    async def own_csp() -> Response:
        headers = {"Content-Security-Policy": OWN_CSP, "X-Powered-By": "FastAPI", "Server": "x"}
        return Response("own", headers=headers)

    @app.get("/widget")
    @security_headers(csp={"default-src": "'self'", "frame-ancestors": "*"})
    async def widget() -> dict[str, str]:
        return {}

    @security_headers(enabled=False)
    @app.get("/raw")  # the mark works above the route decorator too
    async def raw() -> dict[str, str]:
        return {}

    @app.get("/login")
    async def login(request: Request, response: Response) -> dict[str, str]:
        request.session["user"] = "ada"
        response.set_cookie("csrftoken", "t0ken")
        response.set_cookie("theme", "dark")
        return {}

    router = APIRouter(prefix="/api")

    @router.get("/thing")
    async def thing() -> dict[str, str]:
        return {}

    app.include_router(router)

    async def sub(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("sub")

    app.mount("/sub", Starlette(routes=[Route("/x", sub)]))
    fender.install(app, **{**OPTIONS, **options})
    return app


def create_flask_app(**options: Any) -> Any:
    """An app factory with a blueprint, as Flask's tutorial has it."""
    from flask import Blueprint, Flask, g, jsonify, make_response, render_template_string, session

    from fender.flask import Fender

    ext = Fender()
    bp = Blueprint("bp", __name__, url_prefix="/bp")

    @bp.get("/x")
    def bp_x() -> Any:
        return "bp"

    @bp.get("/widget")
    @security_headers(csp="default-src 'self'; frame-ancestors *")
    def widget() -> Any:
        return "widget"

    app = Flask(__name__)
    app.secret_key = "k" * 40

    @app.get("/")
    def root() -> Any:
        return jsonify(
            nonce=g.get("csp_nonce"),
            jinja=render_template_string("{{ csp_nonce() }}"),
        )

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("secret detail")

    @app.get("/own-csp")
    def own_csp() -> Any:
        return "own", 200, {"Content-Security-Policy": OWN_CSP, "X-Powered-By": "Flask"}

    @app.get("/raw")
    @security_headers(enabled=False)
    def raw() -> Any:
        return "raw"

    @app.get("/login")
    def login() -> Any:
        session["user"] = "ada"
        response = make_response("in")
        response.set_cookie("csrftoken", "t0ken")
        response.set_cookie("theme", "dark")
        return response

    ext.init_app(app, **{**OPTIONS, **options})
    app.register_blueprint(bp)
    return app


def bare_asgi_app(**options: Any) -> Any:
    from fender.security import CSP_NONCE

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/boom":
            raise RuntimeError("secret detail")
        headers = [(b"content-type", b"text/plain")]
        status, body = 200, f"nonce={scope['state'].get('csp_nonce')}".encode()
        if path == "/own-csp":
            headers += [(b"content-security-policy", OWN_CSP.encode()), (b"server", b"bare")]
        elif path == "/contextvar":
            body = f"nonce={CSP_NONCE.get()}".encode()
        elif path != "/":
            status, body = 404, b"no"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return fender.asgi.wrap(app, **{**OPTIONS, **options})


def bare_wsgi_app(**options: Any) -> Any:
    from fender.security import CSP_NONCE

    def app(environ: Any, start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path == "/boom":
            raise RuntimeError("secret detail")
        headers = [("Content-Type", "text/plain")]
        status, body = "200 OK", f"nonce={environ.get('fender.csp_nonce')}".encode()
        if path == "/own-csp":
            headers += [("Content-Security-Policy", OWN_CSP), ("X-Powered-By", "bare")]
        elif path == "/contextvar":
            body = f"nonce={CSP_NONCE.get()}".encode()
        elif path != "/":
            status, body = "404 Not Found", b"no"
        start_response(status, headers)
        return [body]

    return fender.wsgi.wrap(app, **{**OPTIONS, **options})


APPS = {
    "fastapi": (fastapi_app, True),
    "flask": (create_flask_app, False),
    "bare-asgi": (bare_asgi_app, True),
    "bare-wsgi": (bare_wsgi_app, False),
}
# Paths every flavour answers: the app, its 404, its 500, fender's own endpoints.
COMMON_PATHS = ["/", "/missing", "/boom", "/health/live", "/health/ready", "/metrics"]
EXTRA_PATHS = {"fastapi": ["/api/thing", "/sub/x"], "flask": ["/bp/x"]}


class Client:
    def __init__(self, app: Any, *, asgi: bool, https: bool = False) -> None:
        self.app = app
        self.asgi = asgi
        self.base = "https://testserver" if https else "http://testserver"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        if self.asgi:
            return asyncio.run(self._get(path, **kwargs))
        transport = httpx.WSGITransport(app=self.app)
        with httpx.Client(transport=transport, base_url=self.base) as client:
            return client.get(path, **kwargs)

    async def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=self.base) as client:
            return await client.get(path, **kwargs)


def client(flavour: str, *, https: bool = False, **options: Any) -> Client:
    factory, asgi = APPS[flavour]
    return Client(factory(**options), asgi=asgi, https=https)


def nonce_of(response: httpx.Response) -> str:
    found = re.findall(r"'nonce-([A-Za-z0-9_-]+)'", response.headers["content-security-policy"])
    assert found
    assert len(set(found)) == 1  # the same nonce in script-src and style-src
    return str(found[0])


# --- every default header, every response --------------------------------------------------


@pytest.mark.parametrize("flavour", list(APPS))
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_every_default_header_is_on_every_response(flavour, https):
    app = client(flavour, https=https)
    expected = defaults(https=https)
    statuses = set()
    for path in COMMON_PATHS + EXTRA_PATHS.get(flavour, []):
        response = app.get(path)
        statuses.add(response.status_code)
        got = {k: response.headers.get(k) for k in expected}
        assert got == expected, (path, response.status_code)
        assert "server" not in response.headers
        assert "x-powered-by" not in response.headers
        # one of each: nothing added twice
        names = [k.lower() for k in response.headers]
        assert len(names) == len(set(names)), (path, names)
    assert {200, 404, 500} <= statuses


@pytest.mark.parametrize("flavour", list(APPS))
def test_hsts_and_upgrade_only_on_https(flavour):
    plain = client(flavour).get("/")
    assert "strict-transport-security" not in plain.headers
    assert "upgrade-insecure-requests" not in plain.headers["content-security-policy"]
    secure = client(flavour, https=True).get("/")
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert secure.headers["content-security-policy"].endswith("; upgrade-insecure-requests")


@pytest.mark.parametrize("flavour", list(APPS))
def test_a_spoofed_forwarded_proto_from_an_untrusted_peer_changes_nothing(flavour):
    response = client(flavour).get(
        "/", headers={"X-Forwarded-Proto": "https", "Forwarded": "proto=https"}
    )
    assert "strict-transport-security" not in response.headers
    assert "upgrade-insecure-requests" not in response.headers["content-security-policy"]


@pytest.mark.parametrize("flavour", list(APPS))
def test_the_apps_own_csp_is_kept_and_server_headers_dropped(flavour):
    response = client(flavour).get("/own-csp")
    assert response.headers.get_list("content-security-policy") == [OWN_CSP]
    assert "x-powered-by" not in response.headers
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("flavour", list(APPS))
def test_the_api_profile(flavour):
    response = client(flavour, security_profile="api").get("/")
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("flavour", list(APPS))
def test_headers_off(flavour):
    response = client(flavour, security_headers=False).get("/")
    for name in defaults(https=False):
        assert name not in response.headers


@pytest.mark.parametrize("flavour", list(APPS))
def test_report_only(flavour):
    response = client(flavour, csp_report_only=True, csp_report_uri="/csp-report").get("/")
    assert "content-security-policy" not in response.headers
    value = response.headers["content-security-policy-report-only"]
    assert value.endswith("; report-uri /csp-report; report-to csp-endpoint")
    assert response.headers["reporting-endpoints"] == 'csp-endpoint="/csp-report"'


# --- nonces --------------------------------------------------------------------------------


def body_nonces(flavour: str, response: httpx.Response) -> set[str]:
    if flavour == "fastapi":
        return {response.json()["nonce"]}
    if flavour == "flask":
        data = response.json()
        return {data["nonce"], data["jinja"]}
    return {response.text.removeprefix("nonce=")}


@pytest.mark.parametrize("flavour", list(APPS))
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_a_fresh_nonce_per_request_the_same_in_the_header_and_the_app(flavour, https):
    app = client(flavour, https=https, csp=NONCED)
    seen = set()
    for _ in range(3):
        response = app.get("/")
        nonce = nonce_of(response)
        assert len(nonce) >= 22  # >= 128 bits of base64
        assert body_nonces(flavour, response) == {nonce}
        seen.add(nonce)
    assert len(seen) == 3


@pytest.mark.parametrize("flavour", ["bare-asgi", "bare-wsgi"])
def test_the_nonce_is_in_the_contextvar_while_the_app_runs(flavour):
    response = client(flavour, csp=NONCED).get("/contextvar")
    assert response.text == f"nonce={nonce_of(response)}"


@pytest.mark.parametrize("flavour", list(APPS))
def test_no_nonce_without_a_nonced_policy(flavour):
    response = client(flavour).get("/")
    assert body_nonces(flavour, response) <= {"None", "", None}


@pytest.mark.parametrize("flavour", ["fastapi", "flask"])
def test_fender_endpoints_and_errors_get_a_usable_policy_with_a_nonced_csp(flavour):
    app = client(flavour, csp=NONCED)
    for path in ("/health/live", "/boom", "/missing"):
        response = app.get(path)
        assert "{nonce}" not in response.headers["content-security-policy"]
        nonce_of(response)


# --- per route -----------------------------------------------------------------------------


@pytest.mark.parametrize(("flavour", "path"), [("fastapi", "/widget"), ("flask", "/bp/widget")])
def test_a_routes_own_policy(flavour, path):
    app = client(flavour)
    response = app.get(path)
    assert response.headers["content-security-policy"] == "default-src 'self'; frame-ancestors *"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (
        app.get("/").headers["content-security-policy"]
        == defaults(https=False)["content-security-policy"]
    )


@pytest.mark.parametrize("flavour", ["fastapi", "flask"])
def test_a_route_with_headers_disabled(flavour):
    response = client(flavour).get("/raw")
    assert response.status_code == 200
    for name in defaults(https=False):
        assert name not in response.headers
    assert "x-request-id" in response.headers


def test_a_route_override_with_a_nonce_gets_one_though_the_app_policy_has_none():
    app = FastAPI()

    @app.get("/page")
    @security_headers(csp=CSP.web().override({"script-src": [CSP.SELF, CSP.NONCE]}))
    async def page(request: Request) -> dict[str, Any]:
        return {"nonce": request.state.csp_nonce}

    fender.install(app, **OPTIONS)
    response = Client(app, asgi=True).get("/page")
    assert response.json()["nonce"] == nonce_of(response)


# --- cookies -------------------------------------------------------------------------------


def cookies_of(response: httpx.Response) -> dict[str, str]:
    return {v.partition("=")[0]: v for v in response.headers.get_list("set-cookie")}


@pytest.mark.parametrize(("flavour", "session"), [("fastapi", "sid"), ("flask", "session")])
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_session_and_csrf_cookies_are_hardened(flavour, session, https):
    cookies = cookies_of(client(flavour, https=https).get("/login"))
    attributes = {
        name: {part.strip().split("=")[0].lower() for part in value.split(";")[1:]}
        for name, value in cookies.items()
    }
    assert {"httponly", "samesite"} <= attributes[session]
    assert "samesite" in attributes["csrftoken"]
    assert "httponly" not in attributes["csrftoken"]  # the page's JavaScript reads it
    assert ("secure" in attributes[session]) is https
    assert ("secure" in attributes["csrftoken"]) is https
    assert cookies["theme"].startswith("theme=dark")
    assert "secure" not in attributes["theme"]


def test_cookies_untouched_when_off():
    cookies = cookies_of(client("flask", https=True, secure_cookies=False).get("/login"))
    assert "Secure" not in cookies["csrftoken"]


def test_a_flask_blueprint_with_a_nonced_route_registered_after_init_app():
    from flask import Blueprint, Flask, g, render_template_string

    from fender.flask import Fender

    app = Flask(__name__)
    Fender(app, **OPTIONS)
    bp = Blueprint("late", __name__)

    @bp.get("/late")
    @security_headers(csp=NONCED)
    def late() -> Any:
        return {"nonce": g.csp_nonce, "jinja": render_template_string("{{ csp_nonce() }}")}

    app.register_blueprint(bp)
    response = Client(app, asgi=False).get("/late")
    assert body_nonces("flask", response) == {nonce_of(response)}


def built_policy() -> SecurityHeaders:
    csp = (
        CSP()
        .directive("default-src", CSP.SELF)
        .directive("script-src", CSP.SELF, CSP.NONCE)
        .directive("report-uri", "/csp-report")
        .report_to("csp", "https://reports.example/csp")
    )
    return SecurityHeaders(csp=csp, hsts="max-age=600")


@pytest.mark.parametrize("flavour", ["fastapi", "flask"])
def test_a_policy_built_in_code_replaces_the_runtimes(flavour):
    factory, asgi = APPS[flavour]
    app = factory()
    runtime = app.state.fender if asgi else app.extensions["fender"]
    runtime.headers = built_policy()
    response = Client(app, asgi=asgi, https=True).get("/")
    nonce = nonce_of(response)
    assert response.headers["content-security-policy"] == (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; report-uri /csp-report; "
        "report-to csp"
    )
    assert response.headers["reporting-endpoints"] == 'csp="https://reports.example/csp"'
    assert response.headers["strict-transport-security"] == "max-age=600"
    assert body_nonces(flavour, response) == {nonce}


@pytest.mark.parametrize("flavour", list(APPS))
@pytest.mark.parametrize("profile", ["web", "api"])
def test_the_status_page_keeps_its_own_policy_under_either_profile(flavour, profile):
    app = client(flavour, security_profile=profile, admin_policy="always")
    page = app.get("/status", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers.get_list("content-security-policy") == [
        (
            "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
    ]
    assert page.headers["x-content-type-options"] == "nosniff"
