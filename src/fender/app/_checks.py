"""The health checks fender adds by itself: disk, memory, and what the settings name."""

from __future__ import annotations

import importlib.util
import os

from fender._hooks import Hooks
from fender.app._memory import MemoryPlan, start_memory_guard
from fender.health import HealthRegistry, Kind, disk_check, memory_check
from fender.observability._logging import get_logger
from fender.settings import Settings

__all__ = ["add_builtin_checks"]

_logger = get_logger("fender")


def add_builtin_checks(
    health: HealthRegistry, settings: Settings, hooks: Hooks, plan: MemoryPlan
) -> None:
    """Disk and memory (information); the database and Celery when the settings name them.

    Memory is judged against this worker's share of the container (see
    :mod:`fender.app._memory`): warn from the collect threshold (75%), fail from 95%; the
    memory guard starts with the app.
    """
    health.add(disk_check("/"), critical=False, kind=Kind.INFO)
    health.add(
        memory_check(
            limit_bytes=plan.share_bytes,
            warn_ratio=settings.memory_collect_percent / 100,
            fail_ratio=max(0.95, settings.memory_collect_percent / 100),
        ),
        critical=False,
        kind=Kind.INFO,
    )
    start_memory_guard(settings, plan, hooks)
    if "database_url" in settings.model_fields_set or os.environ.get("DATABASE_URL"):
        from fender.db._checks import add_database_checks

        # Never a boot failure: a URL or driver fender cannot use is a warning on the check.
        add_database_checks(health, settings, hooks)

    if settings.celery_broker_url:
        if importlib.util.find_spec("celery") is None:
            _logger.warning(
                "celery_check_skipped", reason="CELERY_BROKER_URL set, celery not installed"
            )
        else:
            from celery import Celery

            from fender.health import celery_check

            app = Celery(settings.service_name, broker=settings.celery_broker_url)
            health.add(celery_check(app), critical=False)
