"""What the security headers add per request: fender against ``secure`` and flask-talisman.

Run with ``.venv/bin/python bench/bench_headers.py`` (``--help`` for options); prints the
tables and writes the ``headers`` section of ``bench/RESULTS.md``.

Driven in process as ``bench_request_path.py`` drives apps (a prebuilt scope or environ, no
server, no client), with its paired rounds: each row is timed next to its baseline, and
"added µs" is the median of the per-round differences. fender's rows are paired with fender
itself with FENDER_SECURITY_HEADERS off, so the difference is the headers' cost inside
fender's one middleware; the peers' rows are paired with the bare app they wrap. Every
variant sends helmet-like defaults (a CSP, HSTS where the peer sends it on http, and the
X-* headers); fender's nonce row also makes a fresh nonce and splices it per request.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from _paired import (
    FENDER,
    PATH,
    Variant,
    fastapi_app,
    flask_app,
    paired_run,
    raw_asgi,
    raw_wsgi,
)
from _results import machine_header, markdown_table, publish

PACKAGES = ("fastapi", "starlette", "flask", "secure", "flask-talisman")
NONCED = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'self'; upgrade-insecure-requests"
)


def variants() -> list[Variant]:
    import fender
    from fender.flask import Fender

    off = {**FENDER, "security_headers": False}

    def installed(**options: Any) -> Any:
        app = fastapi_app()
        fender.install(app, **options)
        return app

    def flask_with(**options: Any) -> Any:
        app = flask_app()
        Fender(app, **options)
        return app

    def on(base: Variant, name: str, app: Any) -> Variant:
        return Variant(base.group, name, app, base.asgi, base)

    raw_off = Variant(
        "raw ASGI", "fender.asgi.wrap, headers off", fender.asgi.wrap(raw_asgi, **off), True
    )
    fa_off = Variant("FastAPI", "fender.install, headers off", installed(**off), True)
    fa = Variant("FastAPI", "FastAPI bare", fastapi_app(), True)
    wsgi_off = Variant(
        "raw WSGI", "fender.wsgi.wrap, headers off", fender.wsgi.wrap(raw_wsgi, **off), False
    )
    fl_off = Variant("Flask", "Fender(app), headers off", flask_with(**off), False)
    fl = Variant("Flask", "Flask bare", flask_app(), False)
    return [
        raw_off,
        on(raw_off, "fender.asgi.wrap, headers on", fender.asgi.wrap(raw_asgi, **FENDER)),
        fa_off,
        on(fa_off, "fender.install, headers on (defaults)", installed(**FENDER)),
        on(fa_off, "fender.install, headers on, nonce'd CSP", installed(**FENDER, csp=NONCED)),
        fa,
        *asgi_peers(fa),
        wsgi_off,
        on(wsgi_off, "fender.wsgi.wrap, headers on", fender.wsgi.wrap(raw_wsgi, **FENDER)),
        fl_off,
        on(fl_off, "Fender(app), headers on (defaults)", flask_with(**FENDER)),
        on(fl_off, "Fender(app), headers on, nonce'd CSP", flask_with(**FENDER, csp=NONCED)),
        fl,
        *flask_peers(fl),
    ]  # fmt: skip


def asgi_peers(bare: Variant) -> list[Variant]:
    try:
        from secure import Secure
        from secure.middleware import SecureASGIMiddleware
    except ImportError:
        return []
    app = fastapi_app()
    app.add_middleware(SecureASGIMiddleware, secure=Secure.with_default_headers())
    return [Variant(bare.group, "secure: SecureASGIMiddleware (defaults)", app, True, bare)]


def flask_peers(bare: Variant) -> list[Variant]:
    out = []
    try:
        from secure import Secure
        from secure.middleware import SecureWSGIMiddleware
    except ImportError:
        pass
    else:
        app = flask_app()
        app.wsgi_app = SecureWSGIMiddleware(app.wsgi_app, secure=Secure.with_default_headers())
        out.append(Variant(bare.group, "secure: SecureWSGIMiddleware (defaults)", app, False, bare))
    try:
        from flask_talisman import Talisman
    except ImportError:
        pass
    else:
        app = flask_app()
        Talisman(app, force_https=False)  # the bench speaks http; defaults otherwise
        out.append(
            Variant(bare.group, "flask-talisman: Talisman(app) (defaults)", app, False, bare)
        )
        app = flask_app()
        Talisman(
            app,
            force_https=False,
            content_security_policy={"default-src": "'self'", "script-src": "'self'"},
            content_security_policy_nonce_in=["script-src"],
        )
        out.append(Variant(bare.group, "flask-talisman, nonce'd CSP", app, False, bare))
    return out


def steps() -> list[tuple[str, Callable[[], object]]]:
    from fender.http.headers import asgi_headers, wsgi_headers
    from fender.security import CSP, CookiePolicy, SecurityHeaders
    from fender.security._headers import new_nonce

    plain = SecurityHeaders(cookies=CookiePolicy())
    nonced = SecurityHeaders(
        csp=CSP.web().override({"script-src": [CSP.SELF, CSP.NONCE]}), cookies=CookiePolicy()
    )
    app_bytes = [(b"content-type", b"application/json"), (b"content-length", b"14")]
    app_text = [("Content-Type", "application/json"), ("Content-Length", "14")]
    cookie = [*app_bytes, (b"set-cookie", b"session=abc; Path=/")]

    def endpoint() -> None: ...

    return [
        ("asgi_headers: defaults, https",
         lambda: asgi_headers(app_bytes, plain.default, https=True, nonce=None,
                              cookies=plain.cookies)),
        ("asgi_headers: nonce'd CSP spliced",
         lambda: asgi_headers(app_bytes, nonced.default, https=True, nonce="n" * 24,
                              cookies=nonced.cookies)),
        ("asgi_headers: with a session cookie to harden",
         lambda: asgi_headers(cookie, plain.default, https=True, nonce=None,
                              cookies=plain.cookies)),
        ("wsgi_headers: defaults, https",
         lambda: wsgi_headers(app_text, plain.default, https=True, nonce=None,
                              cookies=plain.cookies)),
        ("SecurityHeaders.for_endpoint (cached)", lambda: plain.for_endpoint(endpoint)),
        ("new_nonce()", new_nonce),
    ]  # fmt: skip


def main() -> None:
    args, table, done = paired_run(__doc__.split("\n", 1)[0], variants)
    number, repeat = (2, 1) if args.smoke else (20_000, 15)
    step_rows = [
        [name, f"{min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6:.2f}"]
        for name, fn in steps()
    ]
    step_table = markdown_table(["step (one call)", "µs"], step_rows)
    intro = (
        f"`bench/bench_headers.py --rounds {args.rounds} --batch {args.batch}`: GET {PATH} "
        "driven in process (no server, no client), plain http. fender's rows: paired with "
        'fender with FENDER_SECURITY_HEADERS off, so "added µs" is what the headers cost '
        "inside its one middleware (target: <= 5 µs). The peers' rows: paired with the bare "
        "app they wrap."
    )
    publish(
        "headers",
        [
            "## Security headers: added µs per request",
            machine_header(PACKAGES),
            intro,
            table,
            "One call of each per-request step (best of 15 x 20,000 calls):",
            step_table,
        ],
        write=not args.no_write,
    )
    done()


if __name__ == "__main__":
    main()
