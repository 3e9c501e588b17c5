"""The Flask extension: ``Fender(app)`` or ``Fender().init_app(app)``.

Flask routes before its ``before_request`` hooks run, so the rate limits are such a hook
(:func:`apply_to_flask`): the rule and the view are known there.
"""

from __future__ import annotations

from typing import Any

from fender.app import WSGI, build_runtime
from fender.errors import ConfigurationError
from fender.frameworks import framework_label
from fender.frameworks.wsgi import WsgiRuntime
from fender.http.access import template_of_rule
from fender.http.endpoints import error_response
from fender.http.headers import ENDPOINT_KEY, NONCE_KEY
from fender.http.ratelimit import HttpRateLimit, RoutePlan
from fender.middleware.wsgi.access import RESPONSE_HEADERS, FenderWSGI
from fender.middleware.wsgi.edge import EdgeWSGI
from fender.middleware.wsgi.ratelimit import limit_sync
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._tiered import TieredLimiter
from fender.security._headers import routes_marked
from fender.settings import Settings

__all__ = ["Fender", "apply_to_flask", "refuse_second_cors"]

_FLASK_STATE = "fender.ratelimit"


class Fender:
    """fender for Flask, after the Flask extension pattern.

    State lives in ``app.extensions["fender"]`` (the app's :class:`Runtime`), never on the
    extension object, so one ``Fender`` can serve several apps.

    Example:
        >>> from flask import Flask
        >>> app = Flask(__name__)
        >>> Fender(app, env="development")  # doctest: +ELLIPSIS
        <fender.frameworks.flask.Fender object at ...>
    """

    def __init__(
        self, app: Any = None, *, settings: Settings | None = None, **options: Any
    ) -> None:
        """Keep the options; install on ``app`` at once when given."""
        self._settings = settings
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any, **options: Any) -> WsgiRuntime:
        """Install fender on the Flask ``app``; ``options`` override the constructor's."""
        from flask import request

        if "fender" in app.extensions:
            raise ConfigurationError("app", app.name, "an app without fender installed")
        runtime = build_runtime(
            self._settings,
            flavour=WSGI,
            framework=framework_label("flask"),
            app=app,
            app_testing=bool(app.testing),
            **{**self._options, **options},
        )
        _security_headers(app, runtime)
        # The edge (proxies, hosts, HTTPS, CORS) inside the access layer, before Flask routes.
        refuse_second_cors(app, runtime.settings)
        runtime.on_startup(lambda: refuse_second_cors(app, runtime.settings))
        app.wsgi_app = FenderWSGI(
            EdgeWSGI(app.wsgi_app, runtime.edge), runtime, route_of=_flask_route
        )
        app.extensions["fender"] = runtime
        apply_to_flask(app, runtime.limiter, access_layer=True)
        # The app's own /status or /health wins over fender's; blueprints registered after
        # init_app are seen when the app starts (its first request).
        runtime.yield_to_app(_fixed_paths(app))
        runtime.on_startup(lambda: runtime.yield_to_app(_fixed_paths(app)))

        def _internal_error(_error: Exception) -> Any:
            # Flask has logged the exception with its traceback (once, with the request id).
            response = error_response(
                500, "internal_error", request.environ.get("fender.request_id")
            )
            return response.body, response.status, list(response.headers)

        # The app's own 500 page wins: registered before init_app, it is kept; after, it
        # replaces this one (same key).
        if not app.error_handler_spec.get(None, {}).get(500):
            app.register_error_handler(500, _internal_error)

        return runtime


def refuse_second_cors(app: Any, settings: Settings) -> None:
    """Raise when FENDER_CORS_ORIGINS is set and the app answers CORS itself (flask-cors).

    Two CORS layers would each add ``Access-Control-Allow-Origin``, and browsers refuse a
    response with two. With FENDER_CORS_ORIGINS empty fender leaves CORS to the app.
    """
    if not settings.cors_origins.strip():
        return
    hooks = [fn for fns in app.after_request_funcs.values() for fn in fns]
    if "cors" in app.extensions or any(
        getattr(fn, "__module__", "").startswith("flask_cors") for fn in hooks
    ):
        raise ConfigurationError(
            "FENDER_CORS_ORIGINS",
            settings.cors_origins,
            "empty while the app has flask-cors (CORS(app)): one CORS layer only; remove "
            "flask-cors, or unset FENDER_CORS_ORIGINS to leave CORS to it",
        )


def _fixed_paths(app: Any) -> list[str]:
    """The app's rules without variables (``/status``), the only ones a fender path can equal."""
    return [rule.rule for rule in app.url_map.iter_rules() if not rule.arguments]


def _flask_route(environ: dict[str, Any]) -> str | None:
    """The matched rule as a template, read while Flask's request context is live.

    (A ``before_request`` hook would cost about 16 µs per request; this is a dict lookup.)
    Also names the view in ``environ[ENDPOINT_KEY]``, where the security headers look for a
    route's own (:func:`fender.security.security_headers`).
    """
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    if rule is None:
        return None
    if routes_marked():
        from flask import current_app

        environ[ENDPOINT_KEY] = current_app.view_functions.get(rule.endpoint)
    return template_of_rule(rule.rule)


def _security_headers(app: Any, runtime: WsgiRuntime) -> None:
    """The Flask side of the security headers: the nonce in ``g`` and Jinja, the session cookie.

    ``g.csp_nonce`` is set by a ``before_request`` hook, added only when the app's policy or
    one of its views' uses a nonce (views are looked at now and when the app starts, its first
    request: blueprints registered after ``init_app`` count); ``csp_nonce()`` in templates
    always works (empty without a nonce). The app's SESSION_COOKIE_NAME is hardened as a
    session cookie.
    """
    from flask import g, request

    runtime.headers.with_session_cookie(str(app.config.get("SESSION_COOKIE_NAME") or "session"))

    def csp_nonce() -> str:
        return str(request.environ.get(NONCE_KEY) or "")

    def set_nonce() -> None:
        g.csp_nonce = request.environ.get(NONCE_KEY)

    def add_views() -> None:
        headers = runtime.headers  # now: the app may have replaced it since init_app
        headers.add_endpoints(app.view_functions.values())
        if headers.uses_nonce and set_nonce not in app.before_request_funcs.get(None, ()):
            app.before_request(set_nonce)

    app.jinja_env.globals["csp_nonce"] = csp_nonce
    add_views()
    runtime.on_startup(add_views)


class _FlaskLimit:
    """The Flask hooks of :func:`apply_to_flask`, with the plans of the endpoints seen."""

    def __init__(self, app: Any, limiter: TieredLimiter, http: HttpRateLimit) -> None:
        self.app = app
        self.limiter = limiter
        self.http = http
        self.plans: dict[tuple[str, str], tuple[str, RoutePlan]] = {}
        # id(rule) -> (rule, route, plan): per request, one lookup with no tuple to build
        # (werkzeug's Rule is unhashable; the rule is kept so that its id stays its own).
        self.by_rule: dict[int, tuple[Any, str, RoutePlan]] = {}
        for rule in app.url_map.iter_rules():  # fail at start-up on a bad decorator
            self.plan_of(rule.endpoint, rule.rule)

    def plan_of(self, endpoint: str, rule: str) -> tuple[str, RoutePlan]:
        found = self.plans.get((endpoint, rule))
        if found is None:
            route = template_of_rule(rule)
            found = (route, self.http.plan_for(route, self.app.view_functions.get(endpoint)))
            self.plans[endpoint, rule] = found
        return found

    def before(self) -> Any:
        from flask import request as proxy

        # The request itself: each attribute of the proxy is a context lookup (about 1 µs).
        # (werkzeug's LocalProxy method; typed as a Request, the proxy does not show it)
        request = proxy._get_current_object()  # type: ignore[attr-defined]  # noqa: SLF001
        rule = request.url_rule
        if rule is None or rule.endpoint is None or self.http.exempt(request.path):
            return None
        if request.method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
            # Flask answers it without the view (a CORS preflight): no request of the
            # route's to count.
            return None
        found = self.by_rule.get(id(rule))
        if found is None or found[0] is not rule:
            route, plan = self.plan_of(rule.endpoint, rule.rule)
            self.by_rule[id(rule)] = (rule, route, plan)
        else:
            _, route, plan = found
        environ = request.environ
        outcome = limit_sync(self.http, self.limiter, plan, route, environ, request)
        if outcome is None:
            return None
        rejection, extra = outcome
        if rejection is None:
            response_headers = environ.get(RESPONSE_HEADERS)
            if response_headers is not None:  # fender's access layer adds them: no after hook
                response_headers.extend(extra)
            else:
                environ[_FLASK_STATE] = extra
            return None
        return rejection.body, rejection.status, list(rejection.headers)

    def after(self, response: Any) -> Any:
        from flask import request

        extra = request.environ.pop(_FLASK_STATE, None)
        if extra:
            for name, value in extra:
                response.headers[name] = value
        return response


def apply_to_flask(
    app: Any,
    limiter: TieredLimiter,
    config: RateLimitConfig | None = None,
    *,
    access_layer: bool = False,
) -> None:
    """Limit every view of a Flask ``app`` (decorators, path table, default); idempotent.

    A ``before_request`` hook (which runs after routing, so the rule and the view are known)
    answers the 429. The headers of an allowed request go to the list fender's access layer
    adds to the response (``access_layer``: ``Fender(app)`` wrapped ``app.wsgi_app``), else
    an ``after_request`` hook adds them (each Flask hook costs a few µs a request). Unmatched
    paths (404) are not limited, nor the OPTIONS Flask answers by itself (CORS preflights).
    The plans of the rules present are resolved now, later ones on first use.

    Raises:
        ConfigurationError: a decorator's limit does not fit the configuration.
    """
    config = limiter.core.config if config is None else config
    if not config.enabled or _FLASK_STATE in app.extensions:
        return
    hooks = _FlaskLimit(app, limiter, HttpRateLimit(config))
    app.extensions[_FLASK_STATE] = hooks
    app.before_request(hooks.before)
    if not access_layer:
        app.after_request(hooks.after)
