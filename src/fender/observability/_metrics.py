"""Prometheus metrics: declared once, correct under gunicorn's many workers.

Other modules declare their metrics through :func:`counter`, :func:`gauge` and :func:`histogram`
(idempotent: the same name returns the same object; a conflicting redeclaration is a
:class:`~fender.errors.ConfigurationError`). Everything lands on prometheus_client's default
registry, beside the application's own metrics, and :func:`exposition` renders it.

Multiprocess mode: under gunicorn (which exports ``SERVER_SOFTWARE=gunicorn/...`` to its
workers) each worker is its own process, so counts would differ from scrape to scrape. fender
then switches prometheus_client to its multiprocess mode by itself, before the first metric is
declared: values go to mmap files in ``PROMETHEUS_MULTIPROC_DIR`` (set by
``fender.runtime.gunicorn_conf``, or else a directory named after the gunicorn master's pid, so a
new master never reads an old one's files) and every scrape builds a fresh registry over them.
That directory is this user's alone (:func:`auto_dir`, created ``0700``); one another user
owns, or can write into, is never adopted: its files could carry forged values. A
``PROMETHEUS_MULTIPROC_DIR`` like that is refused too: an ``unsafe_metrics_dir`` error, and the
worker counts alone (single-process mode) rather than serve what others wrote.
Gauges use the ``live*`` modes only, and at each scrape the files of workers that are gone are
marked dead, so a killed worker leaves no stale gauge while its counts still add up.
"""

from __future__ import annotations

import abc
import atexit
import bisect
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import prometheus_client
from prometheus_client import values as _values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from fender._negotiate import preferred
from fender._private_dir import private_dir, user_base
from fender._server import under_gunicorn
from fender._version import __version__
from fender.errors import ConfigurationError
from fender.observability._logging import get_logger
from fender.observability._process import WorkerProcessCollector

__all__ = [
    "FOLD_INTERVAL_SECONDS",
    "OTEL_DURATION_BUCKETS",
    "Buffered",
    "LabelGuard",
    "add_scrape_collector",
    "auto_dir",
    "counter",
    "exposition",
    "exposition_type",
    "fold",
    "gauge",
    "histogram",
    "multiprocess_dir",
    "set_build_info",
]

# OpenTelemetry's default buckets for http.server.request.duration, in seconds.
OTEL_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
OVERFLOW_LABEL: Final = "_overflow"
LIVE_GAUGE_MODES: Final = frozenset({"livesum", "livemax", "livemin", "liveall", "livemostrecent"})
OPENMETRICS_TYPE: Final = "application/openmetrics-text"
_EXPOSITION_TYPES: Final = ("text/plain", OPENMETRICS_TYPE)  # the text format by default
FOLD_INTERVAL_SECONDS: Final = 0.25
"""How often a worker folds its buffered series into the multiprocess files."""

_lock = threading.RLock()
_declared: dict[str, tuple[type[MetricWrapperBase], tuple[str, ...], MetricWrapperBase]] = {}
_multiprocess: str | None = None
_configured = False
_build_labels: tuple[str, ...] | None = None

M = TypeVar("M", bound=MetricWrapperBase)


def auto_dir(master_pid: int) -> Path:
    """The multiprocess directory of the gunicorn master ``master_pid`` when none is set.

    Under this user's own base (``/tmp/fender-<uid>``, ``0700``): another local user can
    neither create it first nor write into it.
    """
    return user_base() / f"metrics-{master_pid}"


def _auto_dir() -> Path:
    """The directory all workers of this gunicorn master share (the master is our parent)."""
    return auto_dir(os.getppid())


def _drop_files_older_than_master(directory: Path) -> None:
    """Remove files a previous master with the same pid left behind (pids are reused)."""
    import psutil

    try:
        master_started = psutil.Process(os.getppid()).create_time()
    except psutil.Error:
        return
    for path in directory.glob("*.db"):
        try:
            if path.stat().st_mtime < master_started:
                path.unlink()
        except FileNotFoundError:
            continue


def _configure() -> None:
    """Choose single- or multiprocess mode once, before the first metric is declared."""
    global _configured, _multiprocess  # noqa: PLW0603  (process-wide, decided once)
    if _configured:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    try:
        if not directory and under_gunicorn():
            auto = private_dir(_auto_dir(), private_parent=True)
            _drop_files_older_than_master(auto)
            directory = str(auto)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        elif directory:
            private_dir(directory)
    except OSError as exc:
        get_logger("fender.metrics").error(
            "unsafe_metrics_dir",
            directory=directory or str(_auto_dir()),
            error=str(exc),
            fallback="this worker's own metrics only (single-process mode)",
        )
        directory = None
    if directory:
        # prometheus_client picked its value class at import; metrics read it at creation.
        _values.ValueClass = _values.MultiProcessValue()  # type: ignore[no-untyped-call]
        _multiprocess = directory
    else:
        # prometheus_client chose multiprocess values at import when the variable merely
        # exists (PROMETHEUS_MULTIPROC_DIR=""), and would then write its files into the
        # working directory: single-process values, as the empty setting means.
        _values.ValueClass = _values.MutexValue
        # First on the registry, so every collection folds the buffered series before the
        # metrics they feed are read.
        prometheus_client.REGISTRY.register(_FoldOnCollect())
    _configured = True


def multiprocess_dir() -> str | None:
    """The multiprocess directory in use, or None in single-process mode."""
    with _lock:
        _configure()
    return _multiprocess


def _declare(
    kind: type[M],
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    **kwargs: Any,
) -> M:
    labels = tuple(labelnames)
    with _lock:
        _configure()
        existing = _declared.get(name)
        if existing is not None:
            old_kind, old_labels, metric = existing
            if old_kind is not kind or old_labels != labels:
                raise ConfigurationError(
                    "metric",
                    name,
                    f"one declaration: {name} is already a {old_kind.__name__} "
                    f"with labels {old_labels}",
                )
            return metric  # type: ignore[return-value]
        metric = kind(name, documentation, labelnames=labels, **kwargs)
        _declared[name] = (kind, labels, metric)
        return metric


def counter(
    name: str, documentation: str, labelnames: Sequence[str] = ()
) -> prometheus_client.Counter:
    """Declare (or get) a counter. Name it without ``_total``; prometheus_client adds it."""
    return _declare(prometheus_client.Counter, name, documentation, labelnames)


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    multiprocess_mode: str = "livesum",
) -> prometheus_client.Gauge:
    """Declare (or get) a gauge; across workers it is combined by ``multiprocess_mode``.

    Only the ``live*`` modes are accepted, so that a dead worker's value disappears.
    """
    if multiprocess_mode not in LIVE_GAUGE_MODES:
        raise ConfigurationError(
            "multiprocess_mode", multiprocess_mode, f"one of {sorted(LIVE_GAUGE_MODES)}"
        )
    return _declare(
        prometheus_client.Gauge,
        name,
        documentation,
        labelnames,
        multiprocess_mode=multiprocess_mode,
    )


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    buckets: Sequence[float] = OTEL_DURATION_BUCKETS,
) -> prometheus_client.Histogram:
    """Declare (or get) a histogram (OpenTelemetry's duration buckets by default)."""
    return _declare(prometheus_client.Histogram, name, documentation, labelnames, buckets=buckets)


class LabelGuard:
    """Cached label children with a cap on distinct series (a cardinality guard).

    ``child(a, b, c)`` costs one dict lookup once a series exists. Past ``max_series`` distinct
    label sets, new values of the label at ``overflow_index`` become ``_overflow``: a client
    cannot grow the registry without bound by inventing paths or methods.
    """

    __slots__ = ("_children", "_lock", "_max", "_metric", "_overflow_index", "dropped")

    def __init__(
        self,
        metric: MetricWrapperBase | Buffered,
        *,
        max_series: int = 200,
        overflow_index: int = 0,
    ) -> None:
        """Guard ``metric``'s label sets, replacing label ``overflow_index`` when full."""
        if max_series < 1:
            raise ConfigurationError("max_series", max_series, "at least 1")
        self._metric = metric
        self._max = max_series
        self._overflow_index = overflow_index
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        self.dropped = 0

    def child(self, *labels: str) -> Any:
        """The metric child for ``labels`` (or for the overflow series when full)."""
        found = self._children.get(labels)
        if found is not None:
            return found
        with self._lock:
            found = self._children.get(labels)
            if found is not None:
                return found
            key = labels
            if len(self._children) >= self._max:
                self.dropped += 1
                replaced = list(labels)
                replaced[self._overflow_index] = OVERFLOW_LABEL
                key = tuple(replaced)
                found = self._children.get(key)
                if found is not None:
                    return found
            found = self._metric.labels(*key)
            self._children[key] = found
            return found

    def __len__(self) -> int:
        """The number of series created so far."""
        return len(self._children)


# -- buffered series: the request path's metrics ---------------------------------------------------
#
# prometheus_client takes a lock per value and, in multiprocess mode, writes an mmap file on every
# update: 3 to 7 µs per request for a histogram and an in-flight gauge. The request path's series
# count in process memory instead (one lock, a bisect and two additions) and are folded into the
# prometheus_client metrics they wrap: at every collection in single-process mode (so a scrape
# is exact), and in multiprocess mode at each scrape by the scraping worker, every
# FOLD_INTERVAL_SECONDS by the others, and at exit.

_series_lock = threading.Lock()
_series: dict[Any, _Series] = {}  # by prometheus_client child: one buffer per series
_folder_pid = 0


class _Series(abc.ABC):
    """One label set's updates since the last fold."""

    __slots__ = ("_child", "_lock")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._lock = threading.Lock()

    @abc.abstractmethod
    def fold(self) -> None:
        """Move what was counted since the last fold into the prometheus_client child."""

    def forked(self) -> None:
        """In a forked child: a fresh lock, and nothing pending (the parent folds its own)."""
        self._lock = threading.Lock()
        self._clear()

    @abc.abstractmethod
    def _clear(self) -> None:
        """Forget what is pending."""


class _CounterSeries(_Series):
    __slots__ = ("_pending",)

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self._pending = 0.0

    def inc(self, amount: float = 1) -> None:
        """Count ``amount`` more."""
        with self._lock:
            self._pending += amount

    def fold(self) -> None:
        """Add the pending count to the counter."""
        with self._lock:
            pending, self._pending = self._pending, 0.0
        if pending:
            self._child.inc(pending)

    def _clear(self) -> None:
        self._pending = 0.0


class _GaugeSeries(_Series):
    __slots__ = ("_folded", "_value")

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self._value = 0.0
        self._folded = 0.0

    def inc(self, amount: float = 1) -> None:
        """Raise the gauge by ``amount``."""
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1) -> None:
        """Lower the gauge by ``amount``."""
        with self._lock:
            self._value -= amount

    def fold(self) -> None:
        """Publish the current value when it changed."""
        with self._lock:
            value = self._value
            changed = value != self._folded
            self._folded = value
        if changed:
            self._child.set(value)

    def _clear(self) -> None:
        self._value = self._folded = 0.0


class _HistogramSeries(_Series):
    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self._bounds: list[float] = list(child._upper_bounds)  # noqa: SLF001  (see Buffered)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (in the first bucket whose bound is >= ``value``)."""
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def fold(self) -> None:
        """Add the pending bucket counts and sum to the histogram's values."""
        with self._lock:
            counts, total = self._counts, self._sum
            if not any(counts):
                return
            self._counts, self._sum = [0] * len(counts), 0.0
        buckets = self._child._buckets  # noqa: SLF001  (see Buffered)
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
        self._child._sum.inc(total)  # noqa: SLF001  (see Buffered)

    def _clear(self) -> None:
        self._counts, self._sum = [0] * len(self._bounds), 0.0


def _histogram_child_is_foldable(child: Any) -> bool:
    return all(hasattr(child, name) for name in ("_upper_bounds", "_buckets", "_sum"))


class Buffered:
    """A counter, gauge or histogram whose label children count in process memory.

    ``labels(...)`` returns a child with the metric's own update methods (``inc``, ``dec``,
    ``observe``), counted under one lock and folded into ``metric`` later (see above). A
    histogram is folded through its child's bucket and sum values, prometheus_client's own
    structure since its first release; were they to change, the children are the metric's own
    (correct, only slower).
    """

    __slots__ = ("_kind", "_metric")

    def __init__(self, metric: MetricWrapperBase) -> None:
        """Buffer the updates of ``metric`` (declared with :func:`counter` and friends)."""
        if isinstance(metric, prometheus_client.Histogram):
            self._kind: type[_Series] = _HistogramSeries
        elif isinstance(metric, prometheus_client.Gauge):
            self._kind = _GaugeSeries
        elif isinstance(metric, prometheus_client.Counter):
            self._kind = _CounterSeries
        else:
            raise ConfigurationError(
                "metric", type(metric).__name__, "a counter, gauge or histogram"
            )
        self._metric = metric

    def labels(self, *values: str) -> Any:
        """The buffered child for ``values`` (the same one for the same values)."""
        child = self._metric.labels(*values)
        if self._kind is _HistogramSeries and not _histogram_child_is_foldable(child):
            return child
        with _series_lock:
            series = _series.get(child)
            if series is None:
                series = _series[child] = self._kind(child)
        _start_folder()
        return series


def fold() -> None:
    """Fold every buffered series into its metric (scrapes call this; so can tests)."""
    with _series_lock:
        pending = list(_series.values())
    for series in pending:
        series.fold()


class _FoldOnCollect:
    """A collector with no metrics of its own: collecting the registry folds first."""

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        fold()
        return ()


def _fold_forever() -> None:
    stop = threading.Event()
    while not stop.wait(FOLD_INTERVAL_SECONDS):
        fold()


def _start_folder() -> None:
    """In multiprocess mode, fold this worker's series every FOLD_INTERVAL_SECONDS and at exit."""
    global _folder_pid  # noqa: PLW0603  (one folding thread per process)
    if _multiprocess is None or _folder_pid == os.getpid():
        return
    with _series_lock:
        if _folder_pid == os.getpid():
            return
        _folder_pid = os.getpid()  # a forked worker starts its own
    threading.Thread(target=_fold_forever, name="fender-metrics-fold", daemon=True).start()
    atexit.register(fold)


def _after_fork_in_child() -> None:
    """Reset the buffered series in a forked child (a worker under ``gunicorn --preload``).

    Fresh locks (another thread may have held one at the fork), nothing of the parent's
    pending counts, and the child's own folding thread.
    """
    global _series_lock, _folder_pid  # noqa: PLW0603  (process-wide state, reset in the child)
    _series_lock = threading.Lock()
    for series in _series.values():
        series.forked()
    _folder_pid = 0
    if _series:
        _start_folder()


os.register_at_fork(after_in_child=_after_fork_in_child)


HIDDEN: Final = "hidden"
"""The ``python`` and ``fender`` labels of ``app_build_info`` when versions are hidden."""


def set_build_info(version: str, commit: str, *, hide_versions: bool = False) -> None:
    """Publish ``app_build_info{version,commit,python,fender} 1``.

    ``hide_versions`` (FENDER_HIDE_VERSIONS, for an exposition anyone may read): the Python
    and fender versions read ``hidden``, and prometheus_client's ``python_info`` is not
    collected.
    """
    python = HIDDEN if hide_versions else ".".join(map(str, sys.version_info[:3]))
    info = gauge(
        "app_build_info",
        "Build of the running service: 1 with version, commit and Python as labels.",
        ("version", "commit", "python", "fender"),
        multiprocess_mode="livemax",
    )
    labels = (
        version or "unknown",
        commit or "unknown",
        python,
        HIDDEN if hide_versions else __version__,
    )
    global _build_labels  # one series per process: the latest settings'
    with _lock:
        previous, _build_labels = _build_labels, labels
        if previous is not None and previous != labels:
            # An app built again in one process. Multiprocess mode cannot drop a series (and
            # warns if asked): the old build reads 0 there instead.
            if _multiprocess is None:
                info.remove(*previous)
            else:
                info.labels(*previous).set(0)
    info.labels(*labels).set(1)
    _show_platform(show=not hide_versions)


def _show_platform(*, show: bool) -> None:
    """Collect prometheus_client's ``python_info`` (the Python version) or not."""
    global _platform_hidden  # noqa: PLW0603  (the default registry is process-wide too)
    with _lock:
        if show == (not _platform_hidden):
            return
        platform = prometheus_client.PLATFORM_COLLECTOR
        with contextlib.suppress(KeyError, ValueError):
            if show:
                prometheus_client.REGISTRY.register(platform)
            else:
                prometheus_client.REGISTRY.unregister(platform)
        _platform_hidden = not show


_platform_hidden = False


def _reap_dead_workers(directory: str) -> None:
    """Mark workers whose process is gone as dead, so their live gauges disappear."""
    import psutil
    from prometheus_client import multiprocess

    seen: set[int] = set()
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid in seen:
            continue
        seen.add(pid)
        try:
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


_RENDER_ATTEMPTS = 3
_scrape_collectors: list[Collector] = []


def add_scrape_collector(collector: Collector) -> None:
    """Have ``collector`` (values read at scrape time) in every exposition, in either mode.

    Single-process: registered on the default registry. Multiprocess: added to the registry
    each exposition builds over the workers' files, so it speaks for the process serving the
    scrape (give it values that are the same in every worker, such as the container's).
    """
    with _lock:
        _configure()
        if _multiprocess is None:
            prometheus_client.REGISTRY.register(collector)
        else:
            _scrape_collectors.append(collector)


def exposition_type(accept: str | None) -> str:
    """The format :func:`exposition` renders for ``accept``: text/plain or OpenMetrics."""
    return preferred(accept, _EXPOSITION_TYPES)


def exposition(accept: str | None = None) -> tuple[bytes, str]:
    """Render every metric; OpenMetrics when ``accept`` asks for it. Returns (body, type)."""
    directory = multiprocess_dir()
    if directory is None:
        registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY
    else:
        from prometheus_client import multiprocess

        fold()  # this worker's counts are exact; the others' are at most a fold interval old
        _reap_dead_workers(directory)
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        registry.register(WorkerProcessCollector(directory))
        for collector in _scrape_collectors:
            registry.register(collector)
    if exposition_type(accept) == OPENMETRICS_TYPE:
        from prometheus_client.openmetrics import exposition as openmetrics

        generate: Callable[[prometheus_client.CollectorRegistry], bytes] = (
            openmetrics.generate_latest
        )
        return _render(generate, registry), openmetrics.CONTENT_TYPE_LATEST
    body = _render(prometheus_client.generate_latest, registry)
    return body, prometheus_client.CONTENT_TYPE_LATEST


def _render(
    generate: Callable[[prometheus_client.CollectorRegistry], bytes],
    registry: prometheus_client.CollectorRegistry,
) -> bytes:
    """``generate(registry)``, listed again when a worker's file vanished while it was read.

    In multiprocess mode the collector lists the workers' files, then reads them; a worker that
    died meanwhile has its files removed (by the master, or by another worker reaping it), and
    the read fails. The next listing no longer has them: a scrape must never be a 500 for it.
    """
    for _ in range(_RENDER_ATTEMPTS - 1):
        try:
            return generate(registry)
        except FileNotFoundError:
            continue
    return generate(registry)
