"""gunicorn configuration module: ``gunicorn -c python:fender.runtime.gunicorn_conf app:app``.

* Logging: gunicorn's own lines (master and workers) go through fender's renderer, so the
  service writes one format; gunicorn's access lines are off (fender's replace them) unless
  FENDER_SERVER_ACCESS_LOG is on.
* Proxies: neither gunicorn nor uvicorn reads ``X-Forwarded-*``; fender's edge does, from
  FENDER_TRUSTED_PROXIES only, and writes the client, scheme and host into the request for
  the app. A server's own reading first would be a second one: uvicorn makes any string of
  ``X-Forwarded-For`` the client address, gunicorn sets the scheme from
  ``X-Forwarded-Proto`` (from every unix-socket peer, whatever ``forwarded_allow_ips`` says).
  So ``forwarded_allow_ips`` is empty, ``secure_scheme_headers`` too, and fender's uvicorn
  worker runs with ``proxy_headers`` off. ``FORWARDED_ALLOW_IPS`` is not consulted.
* Drain: a drain flag left by an earlier server is cleared when the master starts.
* Request heads: gunicorn's own workers (sync, gthread) take their limits from
  FENDER_MAX_HEADER_BYTES and FENDER_MAX_HEADER_COUNT (``limit_request_line``, at most
  gunicorn's 8190; ``limit_request_field_size``; ``limit_request_fields``); fender's uvicorn
  worker applies them itself (:mod:`fender.runtime.uvicorn_worker`). gunicorn's sync workers
  send ``Server: gunicorn`` (no version), which gunicorn has no setting to drop.
* Metrics: the master gives all workers one fresh ``PROMETHEUS_MULTIPROC_DIR`` (wiped at start)
  and marks each exiting worker dead, so its live gauges disappear while its counts remain.
  The directory is this user's alone (created ``0700``); one that is a symlink, another
  user's, or writable by group or others stops the start (ConfigurationError).

* Serving: bind, workers, worker class, threads, timeouts, keep-alive, ``max_requests`` and the
  rest come from :mod:`fender.runtime._serve`: the plan ``fender run`` computed (exported as
  FENDER_SERVE_PLAN), else the same plan computed here, for an ASGI app unless FENDER_APP_KIND
  or FENDER_WORKER_CLASS says WSGI. It is logged once at start (``server_config``), and
  gunicorn's command-line flags still win over it. No control socket.

Settings of your own go in a file that star-imports this one.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from fender.observability._logging import configure_logging

__all__ = [
    "GunicornLogger",
    "child_exit",
    "logger_class",
    "on_exit",
    "on_starting",
    "prepare_metrics_dir",
    "request_limits",
    "secure_scheme_headers",
    "serve_plan",
    "when_ready",
]


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, rendering through fender's handler instead of its own."""

    def setup(self, cfg: Any) -> None:
        """Let gunicorn set levels, then route its loggers to fender's renderer."""
        super().setup(cfg)
        configure_logging()


_OWN_DIR_VARIABLE = "FENDER_OWN_METRICS_DIR"  # set when fender chose the directory


def prepare_metrics_dir(master_pid: int) -> str:
    """Create (or empty) the multiprocess metrics directory; export it to the workers.

    Without ``PROMETHEUS_MULTIPROC_DIR``, a directory of fender's own, named after the master,
    which :func:`on_exit` removes.

    Raises:
        ConfigurationError: the directory is not this user's alone (its files could be
            forged by whoever else can write there).
    """
    from fender._private_dir import private_dir
    from fender.errors import ConfigurationError
    from fender.observability._metrics import auto_dir

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    own = not directory
    if not directory:
        directory = str(auto_dir(master_pid))
        os.environ[_OWN_DIR_VARIABLE] = directory
    try:
        path = private_dir(directory, private_parent=own)
    except OSError as exc:
        raise ConfigurationError(
            "PROMETHEUS_MULTIPROC_DIR",
            directory,
            f"a directory this user alone can write, or a missing one it can create ({exc})",
        ) from None
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def on_starting(server: Any) -> None:
    """Gunicorn hook (master, before workers fork): a fresh metrics directory, the plan logged.

    The workers learn how many they are (their memory share is the limit divided by it) from
    the configuration gunicorn really runs, command-line flags included.
    """
    prepare_metrics_dir(os.getpid())
    from fender.runtime._serve import WORKER_COUNT_VARIABLE

    workers = int(getattr(server.cfg, "workers", 1) or 1)
    os.environ[WORKER_COUNT_VARIABLE] = str(workers)
    if _PLAN is not None:
        from fender.observability._logging import get_logger

        effective = {
            name: getattr(server.cfg, name, None)
            for name in ("workers", "worker_class_str", "threads", "timeout", "graceful_timeout")
        }
        get_logger("fender.server").info("server_config", **_PLAN, effective=effective)


def when_ready(server: Any) -> None:
    """Gunicorn hook (master, app loaded when preloading, before forking): ``gc.freeze()``.

    With GUNICORN_PRELOAD the workers share the app's pages with the master until written;
    freezing keeps the garbage collector from writing to (and so copying) every one of them.
    """
    if getattr(server.cfg, "preload_app", False):
        import gc

        gc.collect()
        gc.freeze()


def on_exit(server: Any) -> None:  # noqa: ARG001  (gunicorn passes the arbiter)
    """Gunicorn hook (master, last): remove the metrics directory fender made for this run."""
    import shutil

    own = os.environ.get(_OWN_DIR_VARIABLE)
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:  # noqa: ARG001  (gunicorn passes the arbiter)
    """Gunicorn hook (master): a worker is gone; drop its live gauges."""
    from prometheus_client import multiprocess

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        multiprocess.mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]


def _settings() -> Any:
    """The settings, or None: a bad environment is reported when the app loads them."""
    from fender.errors import ConfigurationError
    from fender.settings import load_settings

    try:
        return load_settings()
    except ConfigurationError:
        return None


def serve_plan(settings: Any) -> dict[str, Any] | None:
    """What to serve: the plan ``fender run`` exported, else one computed here.

    The app's kind is FENDER_APP_KIND (``fender run`` detected it), else WSGI when
    FENDER_WORKER_CLASS names a WSGI worker, else ASGI. None when the settings are unusable.
    """
    from fender.runtime._launch import KIND_VARIABLE, current_plan, exported_plan
    from fender.runtime._serve import configured_kind

    exported = exported_plan()
    if exported is not None:
        return exported
    if settings is None:
        return None
    kind = configured_kind(settings, os.environ.get(KIND_VARIABLE))
    return current_plan(settings, kind).as_event()


_GUNICORN_MAX_LINE = 8190  # gunicorn's ceiling of limit_request_line


def request_limits(settings: Any) -> dict[str, int]:
    """The ``limit_request_*`` of gunicorn from FENDER_MAX_HEADER_BYTES and _COUNT."""
    if settings is None:
        return {}
    size = settings.max_header_bytes
    return {
        "limit_request_line": min(size, _GUNICORN_MAX_LINE),
        "limit_request_fields": settings.max_header_count,
        "limit_request_field_size": size,
    }


_SETTINGS = _settings()
logger_class = GunicornLogger
# gunicorn's access lines only when asked for (fender's own replace them); rendered by fender
accesslog = "-" if _SETTINGS is not None and _SETTINGS.server_access_log else None
forwarded_allow_ips = ""  # fender's edge reads the forwarding headers (see the module)
# No scheme from X-Forwarded-Proto / -Ssl / -Protocol in gunicorn: fender's edge decides it.
secure_scheme_headers: dict[str, str] = {}
worker_class = "fender.runtime.uvicorn_worker.UvicornWorker"
_PLAN = serve_plan(_SETTINGS)
if _PLAN is not None:
    # Every value below is what `fender workers --json` prints; command-line flags still win.
    bind = _PLAN["bind"]
    workers = _PLAN["workers"]
    worker_class = _PLAN["worker_class"]
    threads = _PLAN.get("threads", 1)
    timeout = _PLAN["timeout"]
    graceful_timeout = _PLAN["graceful_timeout"]
    keepalive = _PLAN["keepalive"]
    max_requests = _PLAN["max_requests"]
    max_requests_jitter = _PLAN["max_requests_jitter"]
    preload_app = _PLAN["preload_app"]
    control_socket_disable = _PLAN["control_socket_disable"]
    if _PLAN.get("worker_tmp_dir"):
        worker_tmp_dir = _PLAN["worker_tmp_dir"]
_LIMITS = request_limits(_SETTINGS)
if _LIMITS:
    limit_request_line = _LIMITS["limit_request_line"]
    limit_request_fields = _LIMITS["limit_request_fields"]
    limit_request_field_size = _LIMITS["limit_request_field_size"]
