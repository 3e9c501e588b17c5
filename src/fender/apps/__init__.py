"""Judge, for production, the secret key and the debug flag the app itself uses.

The environment rules (:func:`fender.settings.production_findings`) read ``SECRET_KEY`` and
``FENDER_DEBUG``; an app signs with its own key and runs with its own debug flag, which may be
neither. Judged here, framework by framework, without importing one that the app is not built
on (a framework's classes are looked up only once its module is loaded):

* Flask: ``app.secret_key`` (``SECRET_KEY`` in ``app.config``) and ``SECRET_KEY_FALLBACKS``,
  ``app.debug``; ``app.testing`` is its testing mode.
* Starlette and FastAPI: ``app.debug`` of the app and of the Starlette apps it mounts. The app
  signs only through ``SessionMiddleware``; its ``secret_key`` is judged where one is added.
* Django, for any other app when Django's settings are configured (``fender.wsgi.wrap`` or
  ``fender.asgi.wrap`` around ``get_wsgi_application()``): ``settings.SECRET_KEY`` and
  ``SECRET_KEY_FALLBACKS`` (Django always signs: sessions, CSRF, password reset tokens) and
  ``settings.DEBUG``. Not for a Flask or Starlette app: one that merely uses Django's ORM
  serves no Django debug page.

What a user expects of ``SECRET_KEY``, and so the rule: an environment's ``SECRET_KEY`` that is
set is judged, always, since something reads it (the app's own JWT signing, say, which fender
cannot see) and a weak one is a forgery waiting. Unset, it is needed only if the app signs with
it and has no key of its own: a Flask, Starlette or Django app signs with the key it holds,
which is judged instead (one that signs nothing needs none: a FastAPI app without sessions
starts in production without ``SECRET_KEY``). For an app fender cannot read, whether it signs
is unknown: an unset ``SECRET_KEY`` is then a warning, never a refusal. What fails closed is
what is really insecure: a weak key the app signs with, debug on.

Testing mode (:meth:`~fender.settings.Settings.testing_mode`: ``FENDER_TESTING``, else Flask's
``app.testing`` or a pytest run) judges the same, but as warnings.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any

from fender._status import Finding, Status
from fender.apps._django import (
    MAX_DEPTH,
    django_route,
    django_routes_among,
    django_setting,
    is_django,
)
from fender.errors import mask
from fender.observability._logging import get_logger
from fender.settings import (
    ProductionRuleError,
    Settings,
    production_error,
    production_findings,
    reporting_only,
    secret_weakness,
)

__all__ = [
    "app_findings",
    "django_route",
    "django_routes_among",
    "is_django",
    "require_app_ready",
]

_logger = get_logger("fender")
_NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# The fields of debug flags: their values are no secret, unlike those of keys.
_FLAG_FIELDS = frozenset({"app.debug", "settings.DEBUG"})


@dataclasses.dataclass(frozen=True, slots=True)
class _Judged:
    """A value the app uses, how to name it to the user, and how to fix it."""

    name: str  # in a sentence: "Flask's app.secret_key"
    field: str  # the ConfigurationError field: "app.secret_key"
    value: object
    fix: str


@dataclasses.dataclass(frozen=True, slots=True)
class _AppView:
    """What fender can read of one app: its keys, its debug flags, its testing mode."""

    description: str
    keys: tuple[_Judged, ...]
    unsigned: str  # why the app needs no key, when it has none
    flags: tuple[_Judged, ...]  # debug flags: bool values
    testing: bool = False


def app_findings(app: object, settings: Settings) -> list[Finding]:
    """Judge ``settings`` and ``app`` for production: the environment rules, then the app's.

    The environment rules are :func:`~fender.settings.production_findings`, told whether the
    app needs ``SECRET_KEY`` and whether it is in its testing mode; then the app's own keys
    and debug flags (see the module's docstring). ``app`` may be wrapped in middleware that
    keeps it as ``.app`` (fender's own wrappers do).

    Example:
        >>> from flask import Flask
        >>> from fender.settings import load_settings
        >>> app = Flask("shop")
        >>> app.secret_key = "dev"
        >>> settings = load_settings({"FENDER_ENV": "production"}, env_file=None)
        >>> [f.reason for f in app_findings(app, settings) if f.status == "fail"]
        ["Flask's app.secret_key is a known placeholder value"]
    """
    return [finding for finding, _ in _judge(app, settings)]


def require_app_ready(app: object, settings: Settings) -> None:
    """Raise for the first production rule ``app`` breaks with ``settings``, if any.

    Nothing is raised in development, in testing mode (the findings are only warnings then,
    and one ``production_rules_relaxed`` event says why) or inside
    :func:`~fender.settings.report_only`.

    Raises:
        ProductionRuleError: a :class:`~fender.errors.ConfigurationError` naming the setting
            or the app's value (``app.secret_key``, ``settings.DEBUG``...), saying what is
            wrong and then the fix; a secret is shown masked.
    """
    if not settings.is_production or reporting_only():
        return
    judged = _judge(app, settings)
    for finding, about in judged:
        if finding.status is not Status.FAIL:
            continue
        if about is None:  # an environment rule: the settings know its variable and value
            raise production_error(settings, finding)
        raise ProductionRuleError(
            finding,
            about.value,
            secret=about.field not in _FLAG_FIELDS,
            env_default="env" not in settings.model_fields_set,
        )
    environment = judged[0][0]
    if environment.status is Status.WARN:  # production, relaxed by testing mode
        _logger.warning(
            "production_rules_relaxed",
            reason=environment.reason,
            relaxed="the production rules only warn; rate limits are off unless a test sets them",
            fix="FENDER_TESTING=0 keeps production behaviour under tests",
        )


def _judge(app: object, settings: Settings) -> list[tuple[Finding, _Judged | None]]:
    """Every finding, with the app's value it is about (``None``: an environment rule)."""
    view = _view(app)
    testing = view.testing if view else False
    bad = Status.FAIL if settings.enforces_production(app_testing=testing) else Status.WARN
    environment = production_findings(
        settings, app_testing=testing, secret_key_needed=None if view is None else False
    )
    judged: list[tuple[Finding, _Judged | None]] = [(f, None) for f in environment]
    if view is None:
        reason = (
            f"fender cannot read the secret key and debug flag of {_describe(app)} (it reads "
            "Flask, Starlette, FastAPI and Django apps): only the environment was judged"
        )
        fix = "check by hand that the app signs with a random key and runs without debug"
        judged.append((Finding("app", Status.WARN, reason, fix), None))
        return judged
    judged.append((Finding("app", Status.PASS, f"judged {view.description}"), None))
    if not view.keys:
        judged.append((Finding("app_secret_key", Status.PASS, view.unsigned), None))
    env_key = settings.secret_key.get_secret_value() if settings.secret_key else None
    judged.extend((_key_finding(key, bad, env_key), key) for key in view.keys)
    for flag in view.flags:
        finding = (
            Finding("app_debug", bad, f"{flag.name} is on", flag.fix, flag.field)
            if flag.value
            else Finding("app_debug", Status.PASS, f"{flag.name} is off")
        )
        judged.append((finding, flag))
    return judged


def _key_finding(key: _Judged, bad: Status, env_key: str | None) -> Finding:
    value = key.value
    if not isinstance(value, str | bytes | None):
        value = str(value)  # starlette.datastructures.Secret, or any str-like holder
    name = key.name
    if env_key is not None and value in (env_key, env_key.encode()):
        name += " (the environment's SECRET_KEY)"
    weakness = secret_weakness(value)
    if weakness:
        return Finding("app_secret_key", bad, f"{name} {weakness}", key.fix, key.field)
    return Finding("app_secret_key", Status.PASS, f"{name} is set ({mask(value)})")


def _view(app: object) -> _AppView | None:
    """What fender can read of ``app`` (through its middleware, mounts and hosts), or ``None``.

    The first Flask, Starlette or Django app met is the app; a ``SessionMiddleware`` met on
    the way (around the app, on a mount, under a host) signs with a key judged too. Django's
    settings are the app's only when the app is Django's handler (under middleware such as
    WhiteNoise's ``application``, or a protocol router's ``http`` entry): a process may hold
    a configured Django beside another app, whose secret Django's settings say nothing about.
    """
    for _where, inner in _reachable(app):
        view = _flask_view(inner) or _starlette_view(inner)
        if view is None and type(inner).__module__.startswith("django."):
            view = _django_view()
        if view is not None:
            live = _live_session_keys(app)
            if live:
                view = dataclasses.replace(view, keys=(*view.keys, *live))
            return view
    return None


def _next(obj: object, where: str) -> list[tuple[str, object]]:
    """What ``obj`` (at ``where``) hands requests to: its wrapped app, its mounts' and hosts'."""
    found = [(where, getattr(obj, "app", None)), (where, getattr(obj, "application", None))]
    mapping = getattr(obj, "application_mapping", None)  # a protocol router (Channels)
    if isinstance(mapping, dict):
        found.extend((where, each) for each in mapping.values())
    found.extend(
        (where + (getattr(route, "path", "") or getattr(route, "host", "")), route.app)
        for route in getattr(obj, "routes", None) or ()
        if hasattr(route, "routes") or hasattr(route, "host")  # a Mount or a Host
    )
    return [(w, each) for w, each in found if each is not None and not inspect.isfunction(each)]


def _reachable(app: object) -> list[tuple[str, object]]:
    """``app`` and what it hands requests to, each with the mount path or host it is under.

    Breadth first, bounded, without cycles; ``""`` is the app itself (or middleware around it).
    """
    order: list[tuple[str, object]] = []
    seen: set[int] = set()
    level: list[tuple[str, object]] = [("", app)]
    for _ in range(MAX_DEPTH):
        following: list[tuple[str, object]] = []
        for where, each in level:
            if id(each) in seen:
                continue
            seen.add(id(each))
            order.append((where, each))
            following.extend(_next(each, where))
        if not following:
            break
        level = following
    return order


def _live_session_keys(app: object) -> list[_Judged]:
    """The keys of the ``SessionMiddleware`` instances reachable from ``app``."""
    if not _loaded("starlette.middleware.sessions"):
        return []
    from starlette.middleware.sessions import SessionMiddleware

    fix = (
        "pass SessionMiddleware a random secret_key, e.g. read from the environment's "
        f"SECRET_KEY, set to the output of {_NEW_KEY}"
    )
    keys = []
    for _where, each in _reachable(app):
        if isinstance(each, SessionMiddleware):
            signer = getattr(each, "signer", None)
            value = getattr(signer, "secret_key", None)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            name = "SessionMiddleware's secret_key (a middleware around or inside the app)"
            keys.append(_Judged(name, "SessionMiddleware(secret_key=...)", value, fix))
    return keys


def _loaded(module: str) -> bool:
    # A class of a module never imported cannot be the app's: no import just to check.
    return module in sys.modules


def _flask_view(app: object) -> _AppView | None:
    if not _loaded("flask"):
        return None
    from flask import Flask

    if not isinstance(app, Flask):
        return None
    fix = (
        "load a random key into app.config['SECRET_KEY'] (e.g. from the environment's "
        f"SECRET_KEY, set to the output of {_NEW_KEY})"
    )
    keys: tuple[_Judged, ...] = ()
    if app.secret_key:  # without a key Flask signs nothing: its session is a NullSession
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
        keys = (
            _Judged("Flask's app.secret_key", "app.secret_key", app.secret_key, fix),
            *(
                _Judged(
                    f"Flask's SECRET_KEY_FALLBACKS[{index}]",
                    "app.config['SECRET_KEY_FALLBACKS']",
                    value,
                    "remove it from SECRET_KEY_FALLBACKS: Flask still accepts what it signed",
                )
                for index, value in enumerate(fallbacks)
            ),
        )
    debug_fix = "turn debug off: unset FLASK_DEBUG and remove DEBUG=True from the app's config"
    return _AppView(
        description=f"the Flask app {app.name!r}",
        keys=keys,
        unsigned="Flask's app.secret_key is not set: the app signs no sessions",
        flags=(_Judged("Flask's app.debug", "app.debug", app.debug, debug_fix),),
        testing=app.testing,
    )


def _starlette_view(app: object) -> _AppView | None:
    if not _loaded("starlette"):
        return None
    from starlette.applications import Starlette

    if not isinstance(app, Starlette):
        return None
    kind = "FastAPI" if type(app).__module__.startswith("fastapi") else "Starlette"
    keys: list[_Judged] = []
    flags: list[_Judged] = []
    for where, sub in _starlette_apps(app):
        name = f"{kind}'s app.debug" if not where else f"app.debug of the app mounted at {where}"
        fix = (
            f"create the app with debug=False ({kind}(debug=False)): debug serves tracebacks"
            if not where
            else f"create the app mounted at {where} with debug=False"
        )
        flags.append(_Judged(name, "app.debug", bool(sub.debug), fix))
        keys.extend(_session_keys(sub, where))
    return _AppView(
        description=f"the {kind} app",
        keys=tuple(keys),
        unsigned="the app signs nothing fender can see (no SessionMiddleware): it needs no key",
        flags=tuple(flags),
    )


def _starlette_apps(app: Any) -> list[tuple[str, Any]]:
    """``app`` and the Starlette apps under it, each with where it is (``""``: the app).

    Mounted or hosted, under middleware too (see :func:`_reachable`).
    """
    from starlette.applications import Starlette

    return [(where, each) for where, each in _reachable(app) if isinstance(each, Starlette)]


def _session_keys(app: Any, where: str) -> list[_Judged]:
    """The ``secret_key`` of each ``SessionMiddleware`` added to ``app``."""
    if not _loaded("starlette.middleware.sessions"):
        return []
    from starlette.middleware.sessions import SessionMiddleware

    place = f" (app mounted at {where})" if where else ""
    fix = (
        "pass SessionMiddleware a random secret_key, e.g. read from the environment's "
        f"SECRET_KEY, set to the output of {_NEW_KEY}"
    )
    keys = []
    for middleware in getattr(app, "user_middleware", ()):
        cls = getattr(middleware, "cls", None)
        if not (isinstance(cls, type) and issubclass(cls, SessionMiddleware)):
            continue
        # Starlette keeps the arguments as args/kwargs (0.35 and later) or as options.
        args = getattr(middleware, "args", ())
        kwargs = getattr(middleware, "kwargs", None) or getattr(middleware, "options", {})
        value = kwargs.get("secret_key", args[0] if args else None)
        name = f"SessionMiddleware's secret_key{place}"
        keys.append(_Judged(name, "SessionMiddleware(secret_key=...)", value, fix))
    return keys


def _django_view() -> _AppView | None:
    """Django's settings when Django is in use (configured), else ``None``."""
    conf = sys.modules.get("django.conf")
    if conf is None:
        return None
    settings = conf.settings
    if not settings.configured:
        return None
    module = getattr(settings, "SETTINGS_MODULE", None) or "the Django settings module"
    fix = (
        f"set SECRET_KEY in {module} to a random value read from the environment "
        "(django.core.management.utils.get_random_secret_key() makes one)"
    )
    keys = [
        _Judged(
            "Django's settings.SECRET_KEY", "settings.SECRET_KEY", django_setting("SECRET_KEY"), fix
        )
    ]
    for index, value in enumerate(django_setting("SECRET_KEY_FALLBACKS") or ()):
        keys.append(
            _Judged(
                f"Django's settings.SECRET_KEY_FALLBACKS[{index}]",
                "settings.SECRET_KEY_FALLBACKS",
                value,
                "remove it from SECRET_KEY_FALLBACKS: Django still accepts what it signed",
            )
        )
    debug_fix = f"set DEBUG = False in {module}: Django's debug page shows settings and code"
    return _AppView(
        description=f"the Django project ({module})",
        keys=tuple(keys),
        unsigned="",
        flags=(
            _Judged(
                "Django's settings.DEBUG",
                "settings.DEBUG",
                bool(django_setting("DEBUG")),
                debug_fix,
            ),
        ),
    )


def _describe(app: object) -> str:
    kind = type(app)
    return f"a {kind.__module__}.{kind.__qualname__}"
