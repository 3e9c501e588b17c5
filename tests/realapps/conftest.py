"""Fixtures shared by the corpus: the environment of a user's suite, bare or with fender."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator

import pytest

from realapps import WITHOUT_FENDER
from realapps.checks import clean_environment

# Starlette's TestClient warns once, at import, about its own dependencies: 1.x wants httpx2
# (fender's dev extra has httpx), 0.37 uses an alias newer anyio deprecates. Imported here,
# before any project's conftest, so that the apps' suites read as their authors wrote them.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    warnings.filterwarnings("ignore", message=r"The anyio\.abc\.\w+ alias is deprecated")
    import starlette.testclient  # noqa: F401


@pytest.fixture(params=["bare", "fender"])
def with_fender(request: pytest.FixtureRequest, monkeypatch, tmp_path) -> bool:
    """Run the app's own suite bare, then with fender, in a user's environment.

    Nothing is set for fender: it must find out by itself that it runs under a test suite
    (``PYTEST_VERSION``, or Flask's ``TESTING``) and leave the app's tests passing as before.
    """
    clean_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no .env of a developer's working directory
    if request.param == "bare":
        monkeypatch.setenv(WITHOUT_FENDER, "1")
    return request.param == "fender"


# Loggers the apps configure: Django's LOGGING, Flask's app.logger (none touches the root).
_APP_LOGGERS = ("django", "realapps")


@pytest.fixture(autouse=True)
def _restore_django_environment() -> Iterator[None]:
    """Leave no DJANGO_SETTINGS_MODULE behind: the Django project's wsgi.py sets it, as a real
    one does, and every process the rest of the suite starts would inherit it (a celery worker
    then loads Django's fixup and dies on a settings module it cannot import)."""
    before = os.environ.get("DJANGO_SETTINGS_MODULE")
    yield
    if before is None:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    else:
        os.environ["DJANGO_SETTINGS_MODULE"] = before


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the apps' loggers as the test found them: Django's setup adds console handlers.

    Each app configures its logging as in its own process; the rest of fender's suite shares
    this one.
    """
    loggers = [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith(_APP_LOGGERS)
    ]
    saved = {lg.name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers}
    yield
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith(_APP_LOGGERS):
            handlers, level, propagate, disabled = saved.get(
                name, ([], logging.NOTSET, True, False)
            )
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
