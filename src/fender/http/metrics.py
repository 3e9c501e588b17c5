"""``GET /metrics``: one rendering reused for a short while, optionally behind the admin guard.

Rendering the exposition costs CPU in proportion to the series (a 445 kB exposition, 8
scrapers: the health probes went from 0.4 ms to 118 ms). So a rendering is reused for
FENDER_METRICS_CACHE_SECONDS per worker and per format (text or OpenMetrics), and scrapers
arriving together wait for one rendering instead of making one each. A rendering slower than
:data:`OFFLOAD_RENDER_SECONDS` moves the next ones off the event loop (a thread).

With FENDER_METRICS_PROTECTED the endpoint answers only the admin token or the admin CIDRs,
as ``/status`` does (off by default: Prometheus scrapes it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Final

from fender._clock import Clock, monotonic
from fender.http.admin import AdminGuard
from fender.http.endpoints import NO_STORE, Flow, Request, Response
from fender.observability import _metrics as metrics
from fender.settings import Settings

__all__ = ["OFFLOAD_RENDER_SECONDS", "MetricsEndpoint", "RenderMetrics"]

OFFLOAD_RENDER_SECONDS: Final = 0.005
"""A ``/metrics`` render slower than this moves the next ones off the event loop (a thread).

Measured on a 2-core machine: a fresh app's exposition (6 kB) renders in 0.75 ms inline and
0.9 ms through ``asyncio.to_thread``; 500 histogram series (1.2 MB) take 300 to 400 ms, all of
it a stall of the event loop inline, at most 18 ms per stall from a thread.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class RenderMetrics:
    """Effect: render the exposition for ``accept`` (in a thread once renders are slow)."""

    endpoint: MetricsEndpoint
    accept: str | None

    async def run_async(self) -> tuple[bytes, str]:
        """On the event loop while renders are quick, else in a thread."""
        if self.endpoint.slow:
            return await asyncio.to_thread(self.endpoint.render, self.accept)
        return self.endpoint.render(self.accept)

    def run_sync(self) -> tuple[bytes, str]:
        """Blocking (WSGI)."""
        return self.endpoint.render(self.accept)


class MetricsEndpoint:
    """The ``/metrics`` handler of one app (see the module)."""

    def __init__(self, settings: Settings, guard: AdminGuard, *, clock: Clock = monotonic) -> None:
        """Read the cache interval and the protection from ``settings``."""
        self.guard = guard if settings.metrics_protected else None
        self._ttl = settings.metrics_cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # format -> (body, content type, rendered at)
        self._cache: dict[str, tuple[bytes, str, float]] = {}
        self.slow = False
        """The last rendering took longer than :data:`OFFLOAD_RENDER_SECONDS`."""

    def __call__(self, request: Request) -> Response | Flow:
        """The exposition, from the cache while it is fresh."""
        if self.guard is not None and self.guard.grant(request) is None:
            return self.guard.deny(request)
        accept = request.headers.get("accept")
        cached = self._fresh(metrics.exposition_type(accept))
        if cached is not None:
            return _response(*cached)
        return self._rendered(accept)

    def _rendered(self, accept: str | None) -> Flow:
        body, content_type = yield RenderMetrics(self, accept)
        return _response(body, content_type)

    def _fresh(self, variant: str) -> tuple[bytes, str] | None:
        cached = self._cache.get(variant)
        if cached is None or self._clock() - cached[2] >= self._ttl:
            return None
        return cached[0], cached[1]

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Render now (unless another caller just did): ``(body, content type)``."""
        variant = metrics.exposition_type(accept)
        # One rendering at a time: scrapers that arrive together reuse the first one's.
        with self._lock:
            cached = self._fresh(variant)
            if cached is not None:
                return cached
            start = time.perf_counter()
            body, content_type = metrics.exposition(accept)
            self.slow = time.perf_counter() - start > OFFLOAD_RENDER_SECONDS
            if self._ttl > 0:
                self._cache[variant] = (body, content_type, self._clock())
        return body, content_type


def _response(body: bytes, content_type: str) -> Response:
    return Response(200, (("content-type", content_type), NO_STORE), body)
