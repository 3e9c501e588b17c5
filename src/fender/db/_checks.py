"""The health checks fender adds for DATABASE_URL: the database answers, and is migrated.

Both run over the process's shared sync engine (:func:`fender.db.engine`), on the health
registry's threads: its own event loop is not the app's, so an asyncio engine's connections
(bound to the app's loop) could not serve it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from fender._hooks import Hooks
from fender._status import Status
from fender.db import _shared
from fender.db._migrations import alembic_config, migrations_check
from fender.db._url import NoEngine
from fender.health import Check, CheckResult, HealthRegistry, database_check
from fender.observability._logging import get_logger
from fender.settings import Settings

__all__ = ["add_database_checks", "database_health_check"]

_logger = get_logger("fender.db")


def database_health_check(
    settings: Settings, *, name: str = "database"
) -> tuple[Check, Callable[[], None]]:
    """The readiness check fender adds for DATABASE_URL, and the closer that frees its pool.

    The check runs ``SELECT 1`` over the shared engine of ``settings`` (the app's own pool, not
    a second one); the closer closes that pool's connections (the engine stays usable).

    Never raises: a URL that does not parse, a dialect SQLAlchemy does not know, an async or
    missing driver each make a check that always reports ``warn`` with the fix, and one
    ``database_check_degraded`` warning is logged at start-up.

    Example::

        check, close = database_health_check(settings)
        registry.add(check, timeout=settings.health_timeout)
        runtime.on_shutdown(close)
    """
    try:
        engine = _shared.engine(settings)
    except NoEngine as exc:
        output = exc.output
    except Exception as exc:  # nothing fender adds by itself may stop the app from booting
        output = f"fender's engine for DATABASE_URL failed to build ({type(exc).__name__})"
    else:
        return database_check(engine, name=name), functools.partial(_shared.dispose, settings)
    _logger.warning("database_check_degraded", check=name, reason=output)
    return _warning_check(name, output), _nothing


def add_database_checks(health: HealthRegistry, settings: Settings, hooks: Hooks) -> None:
    """What fender.install adds when DATABASE_URL is set: checks, and pools closed at shutdown.

    ``settings`` become the default of :func:`fender.db.engine` and
    :func:`fender.db.async_engine` in this process.
    """
    _shared.use_settings(settings)
    check, close = database_health_check(settings)
    health.add(check, timeout=settings.health_timeout)
    hooks.on_shutdown(close)
    hooks.on_shutdown(functools.partial(_shared.adispose, settings))
    path = alembic_config(settings)
    if path is None or close is _nothing:
        return
    migrations = migrations_check(path, _shared.engine(settings))
    health.add(migrations, timeout=settings.health_timeout)


def _warning_check(name: str, output: str) -> Check:
    # The same name and health+json key as the working check, so dashboards see one series.
    result = CheckResult(Status.WARN, output)
    return Check(
        name=name,
        func=lambda: result,
        component_type="datastore",
        measurement="responseTime",
    )


def _nothing() -> None:
    """Nothing to free: the check holds no engine."""
