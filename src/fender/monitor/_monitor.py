"""The in-process monitor: request series per worker, merged for /status; threshold alerts.

Each worker records every finished request into its own rings (:mod:`fender.monitor._rings`):
a file in the monitor directory under gunicorn (``<PROMETHEUS_MULTIPROC_DIR>/monitor``), plain
memory in a single process. Once a second a daemon thread samples the worker's memory and open
breakers and shares its breakers and health-check streaks in a small state file. One worker,
the one holding ``alerts.lock`` (``flock``: the kernel hands it to another when its holder dies),
merges every worker's series, evaluates the alerts, says each transition once (a log event and
the ``fender_alert_active`` / ``fender_alerts_fired_total`` metrics) and writes the book to
``alerts.json``, which any worker's /status reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from fender.monitor._alerts import Alert, AlertBook, Key, Transition
from fender.monitor._merge import Window, merged_rows, route_windows, series, windows
from fender.monitor._rings import SECONDS, Rings, read_rings
from fender.monitor._rules import rules
from fender.observability import _metrics as metrics
from fender.observability._logging import get_logger
from fender.settings import Settings

__all__ = ["TICK_SECONDS", "Monitor"]

TICK_SECONDS: Final = 1.0
"""Seconds between two ticks of a monitor (memory and breakers sampled, alerts evaluated)."""
STEP: Final = 15
"""Seconds per sparkline point (60 points over 15 minutes)."""
SLOWEST: Final = 5
_MEMORY_FRESH: Final = 5  # seconds: a memory sample older than this is no reading
_CLEANUP_EVERY: Final = 60
_logger = get_logger("fender.monitor")


class Monitor:
    """One application's monitor; :meth:`start` in each worker process."""

    def __init__(
        self,
        settings: Settings,
        *,
        directory: Callable[[], Path | None],
        share_bytes: int | None,
        open_breakers: Callable[[], list[str]],
        streaks: Callable[[], Mapping[str, int]],
        clock: Callable[[], float] = time.time,
        rss: Callable[[], int] | None = None,
    ) -> None:
        """Watch ``open_breakers()`` and health ``streaks()``; series in ``directory()``.

        ``directory`` is asked in each worker when it opens its rings (gunicorn's master knows
        the multiprocess directory only after it imported the app); None: this process alone.

        ``share_bytes``: the worker's memory share (memory is a ratio of it; none without).
        ``clock``: wall seconds (a manual clock in tests).
        """
        self._directory = directory
        self.directory: Path | None = None
        self.book = AlertBook(rules(settings))
        self.min_requests = settings.alert_min_requests
        # Requests past the p99 threshold are counted apart: that alert is exact, not binned.
        self._slow = settings.alert_p99_ms / 1000
        self._share = share_bytes
        self._open_breakers = open_breakers
        self._streaks = streaks
        self._clock = clock
        self._rss = rss or _process_rss
        self._rings: Rings | None = None
        self._pid = 0
        self._shared_state: dict[str, Any] | None = None
        self._lock_file: Any = None
        self._leading = False
        self._last_cleanup = 0.0
        # What /status shows of the book, replaced whole after each evaluation: requests read
        # it while the tick thread changes the book.
        self._shown: dict[str, list[dict[str, Any]]] = {"active": [], "resolved": []}
        self._active = metrics.gauge(
            "fender_alert_active",
            "In-process threshold alerts firing now (1), by alert, subject and severity.",
            ("alert", "subject", "severity"),
            multiprocess_mode="livemax",
        )
        self._fired = metrics.counter(
            "fender_alerts_fired", "In-process threshold alerts fired.", ("alert", "severity")
        )

    # --- the worker's own series ------------------------------------------------------------------

    def open(self) -> None:
        """This process's rings, once per process (a forked worker gets its own)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        if not self._pid:
            owner = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _forgo_lead(owner))
        self._pid = pid
        base = int(self._clock())
        self.directory = self._directory()
        if self.directory is not None:
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._rings = Rings.create(self.directory / f"rings_{pid}.bin", base, self._slow)
            except OSError as exc:
                # Degrade, never fail the start: this worker's /status speaks for itself alone.
                _logger.warning(
                    "monitor_unshared",
                    directory=str(self.directory),
                    error=f"{type(exc).__name__}: {exc}",
                    effect="/status shows this worker's requests only",
                )
                self.directory = None
            else:
                return
        self._rings = Rings.create(None, base, self._slow)

    def record(self, route: str, status: int, seconds: float) -> None:
        """One finished request (the access observer calls it)."""
        rings = self._rings
        if rings is not None:
            rings.record(route, status, seconds, self._clock())

    def rejected(self) -> None:
        """One request refused by a rate limit."""
        rings = self._rings
        if rings is not None:
            rings.rejected(self._clock())

    # --- the tick ---------------------------------------------------------------------------------

    def poll(self) -> bool:
        """One tick for a process-wide ticker (``fender.app``'s); False once stopped."""
        if self._stopped:
            return False
        try:
            self.tick()
        except OSError as exc:  # the shared directory removed or full: said once, not per tick
            if not self._io_failing:
                _logger.warning("monitor_io_failed", directory=str(self.directory), error=str(exc))
            self._io_failing = True
        else:
            self._io_failing = False
        return True

    _io_failing = False

    def start(self) -> None:
        """Open this process's rings; tick from now on (:meth:`poll`, once a second)."""
        self._stopped = False
        self.open()

    _stopped = False

    def stop(self) -> None:
        """Stop ticking; the rings stay (a worker's requests count for 15 minutes)."""
        self._stopped = True
        if self._lock_file is not None:
            self._lock_file.close()  # another worker takes the lead
            self._lock_file, self._leading = None, False

    def tick(self) -> list[Transition]:
        """Sample, share, and (in the leading worker) evaluate; the transitions said now."""
        self.open()
        now = self._clock()
        rings = self._rings
        assert rings is not None  # opened above
        rss = self._rss()
        ratio = rss / self._share if self._share else None
        open_breakers = sorted(self._open_breakers())
        rings.sample(now, ratio, len(open_breakers))
        state = {"open_breakers": open_breakers, "streaks": dict(self._streaks())}
        self._share_state(state)
        if not self._lead():
            return []
        return self._evaluate(now, state)

    def _share_state(self, state: dict[str, Any]) -> None:
        if state == self._shared_state:
            return
        if self.directory is not None:
            _write_json(self.directory / f"state_{self._pid}.json", state)
        self._shared_state = state  # once written: a failed write is tried again next tick

    def _lead(self) -> bool:
        """True in the worker that evaluates the alerts (the one holding the lock)."""
        if self._leading or self.directory is None:
            self._leading = True
            return True
        import fcntl

        lock = (self.directory / "alerts.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return False
        self._lock_file, self._leading = lock, True
        # Continue from the book the last leader left: what fired does not fire again.
        with contextlib.suppress(OSError, ValueError):
            self.book.restore(json.loads((self.directory / "alerts.json").read_text()))
        return True

    def _evaluate(self, now: float, own: dict[str, Any]) -> list[Transition]:
        with self._all_rings() as rings:
            readings = self.readings(rings, self._states(own), now)
        transitions = self.book.evaluate(readings, now)
        for transition in transitions:
            self._announce(transition)
        firing = self.book.firing()
        for alert in firing:
            self._active.labels(alert.name, alert.subject or "", alert.severity).set(1)
        self._shown = {
            "active": [_shown(a) for a in firing],
            "resolved": [_shown(a) for a in self.book.resolved()],
        }
        if self.directory is not None:
            _write_json(self.directory / "alerts.json", self.book.state())
            if now - self._last_cleanup >= _CLEANUP_EVERY:
                self._last_cleanup = now
                self._clean(now)
        return transitions

    def readings(
        self, rings: list[Rings], states: list[Mapping[str, Any]], now: float
    ) -> dict[Key, float | None]:
        """Each alert's reading now, from every worker's series and shared state."""
        second = int(now)
        rows = merged_rows(rings, second - 59, second)
        minute = Window(60, self._slow)
        for row in rows:
            if row is not None:
                minute.add(row)
        found: dict[Key, float | None] = {}
        if minute.requests >= self.min_requests:
            found["error_rate", None] = minute.error_rate
            found["latency_p99", None] = minute.quantile_ms(0.99)
        memory = next((r[3] for r in reversed(rows[-_MEMORY_FRESH:]) if r and r[3]), 0)
        if memory:
            found["memory_high", None] = found["memory_critical", None] = (memory - 1) / 1000
        for state in states:
            for name in state.get("open_breakers", ()):
                found["breaker_open", str(name)] = 1.0
            for check, streak in state.get("streaks", {}).items():
                key = ("health_failing", str(check))
                found[key] = max(float(streak), found.get(key) or 0.0)
        return found

    def _announce(self, transition: Transition) -> None:
        alert = transition.alert
        fields = {
            "alert": alert.name,
            "subject": alert.subject,
            "severity": alert.severity,
            "value": round(alert.value, 4),
            "threshold": alert.threshold,
            "message": alert.message,
        }
        if transition.kind == "firing":
            self._fired.labels(alert.name, alert.severity).inc()
            log = _logger.error if alert.severity == "critical" else _logger.warning
            log("alert_firing", across_since=_iso(alert.across_since), **fields)
            return
        self._active.labels(alert.name, alert.subject or "", alert.severity).set(0)
        firing = alert.firing_since or alert.across_since
        _logger.info(
            "alert_resolved", firing_for_s=round((alert.resolved_at or 0) - firing, 1), **fields
        )

    # --- other workers ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _all_rings(self) -> Any:
        """Every worker's rings (this one's alone without a directory)."""
        if self.directory is None:
            yield [self._rings] if self._rings is not None else []
            return
        rings = list(read_rings(self.directory))
        try:
            yield rings
        finally:
            for ring in rings:
                ring.close()

    def _states(self, own: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The shared state of every live worker (this one's as it is now)."""
        if self.directory is None:
            return [own]
        states = [own]
        for path in self.directory.glob("state_*.json"):
            pid = _pid_of(path)
            if pid in (None, self._pid) or not _alive(pid):
                continue
            with contextlib.suppress(OSError, ValueError):
                states.append(json.loads(path.read_text()))
        return states

    def _clean(self, now: float) -> None:
        """Remove the files of workers gone (their rings once older than 15 minutes)."""
        assert self.directory is not None
        for path in self.directory.glob("state_*.json"):
            pid = _pid_of(path)
            if pid is not None and not _alive(pid):
                path.unlink(missing_ok=True)
        for ring in read_rings(self.directory):
            try:
                gone = not _alive(ring.pid) and ring.last_second() < now - SECONDS
            finally:
                ring.close()
            if gone:
                (self.directory / f"rings_{ring.pid}.bin").unlink(missing_ok=True)

    # --- /status ----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The ``traffic`` and ``alerts`` of /status (see the contract in the README)."""
        now = self._clock()
        second = int(now)
        with self._all_rings() as rings:
            rows = merged_rows(rings, second - SECONDS + 1, second)
            minute = second // 60
            routes = route_windows(rings, range(minute - 4, minute + 1))
            workers = sum(1 for ring in rings if _alive(ring.pid))
        slowest = sorted(
            (item for item in routes.items() if item[1].requests),
            key=lambda item: (-(item[1].quantile_ms(0.99) or 0.0), item[0]),
        )[:SLOWEST]
        traffic = {
            "workers": workers,
            "windows": {
                name: window.as_dict() for name, window in windows(rows, self._slow).items()
            },
            "series": series(rows, STEP, self._slow),
            "slowest_routes": [{"route": name, **_route(window)} for name, window in slowest],
        }
        return {"traffic": traffic, "alerts": self._alerts()}

    def _alerts(self) -> dict[str, list[dict[str, Any]]]:
        if self.directory is None or self._leading:
            return self._shown
        book = AlertBook(self.book.rules)  # the leader's, as it last wrote it
        with contextlib.suppress(OSError, ValueError):
            book.restore(json.loads((self.directory / "alerts.json").read_text()))
        return {
            "active": [_shown(a) for a in book.firing()],
            "resolved": [_shown(a) for a in book.resolved()],
        }

    def _forgo_lead(self) -> None:
        """In a forked child: the lock is the parent's (the child closes its copy of it)."""
        if self._lock_file is not None:
            self._lock_file.close()
        self._lock_file, self._leading = None, False


def _forgo_lead(owner: weakref.ref[Monitor]) -> None:
    monitor = owner()
    if monitor is not None:
        monitor._forgo_lead()  # noqa: SLF001  (its own hook, registered by itself)


def _route(window: Window) -> dict[str, Any]:
    shown = window.as_dict()
    return {
        key: shown[key]
        for key in ("requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms")
    }


def _shown(alert: Alert) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": alert.name,
        "subject": alert.subject,
        "severity": alert.severity,
        "since": _iso(alert.firing_since or alert.across_since),
        "value": round(alert.value, 4),
        "threshold": alert.threshold,
        "message": alert.message,
    }
    if alert.resolved_at is not None:
        shown["resolved_at"] = _iso(alert.resolved_at)
    return shown


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _write_json(path: Path, data: object) -> None:
    """Whole or not at all: written beside, then renamed over."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data))
    partial.replace(path)


def _pid_of(path: Path) -> int | None:
    try:
        return int(path.stem.rpartition("_")[2])
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


_PROCESS: list[Any] = []


def _process_rss() -> int:
    import psutil

    if not _PROCESS or _PROCESS[0].pid != os.getpid():
        _PROCESS[:] = [psutil.Process()]
    return int(_PROCESS[0].memory_info().rss)
