"""The Flask extension: ``Fender(app)`` or ``Fender().init_app(app)``."""

from __future__ import annotations

from typing import Any

from fender.errors import ConfigurationError
from fender.ratelimit.limiter import TieredLimiter
from fender.settings import Settings
from fender.web.endpoints import error_response
from fender.web.observe import template_of_rule
from fender.web.ratelimit import apply_to_flask
from fender.web.runtime import Runtime, build_runtime
from fender.web.wsgi import FenderWSGI

__all__ = ["Fender"]


class Fender:
    """fender for Flask, after the Flask extension pattern.

    State lives in ``app.extensions["fender"]`` (the app's :class:`Runtime`), never on the
    extension object, so one ``Fender`` can serve several apps.

    Example:
        >>> from flask import Flask
        >>> app = Flask(__name__)
        >>> Fender(app, env="development")  # doctest: +ELLIPSIS
        <fender.web.flask.Fender object at ...>
    """

    def __init__(
        self, app: Any = None, *, settings: Settings | None = None, **options: Any
    ) -> None:
        """Keep the options; install on ``app`` at once when given."""
        self._settings = settings
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any, **options: Any) -> Runtime:
        """Install fender on the Flask ``app``; ``options`` override the constructor's."""
        from flask import request

        if "fender" in app.extensions:
            raise ConfigurationError("app", app.name, "an app without fender installed")
        runtime = build_runtime(
            self._settings,
            framework=_framework("flask"),
            asynchronous=False,
            app=app,
            app_testing=bool(app.testing),
            **{**self._options, **options},
        )
        app.wsgi_app = FenderWSGI(app.wsgi_app, runtime, route_of=_flask_route)
        app.extensions["fender"] = runtime
        limiter = runtime.limiter
        if not isinstance(limiter, TieredLimiter):  # pragma: no cover  (built synchronous)
            raise TypeError("a WSGI runtime has a threaded limiter")
        apply_to_flask(app, limiter)
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


def _fixed_paths(app: Any) -> list[str]:
    """The app's rules without variables (``/status``), the only ones a fender path can equal."""
    return [rule.rule for rule in app.url_map.iter_rules() if not rule.arguments]


def _flask_route(environ: dict[str, Any]) -> str | None:
    """The matched rule as a template, read while Flask's request context is live.

    (A ``before_request`` hook would cost about 16 µs per request; this is a dict lookup.)
    """
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    return None if rule is None else template_of_rule(rule.rule)


def _framework(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return name
