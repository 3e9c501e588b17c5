"""Answers a server may give without an application thread: the liveness probe.

A WSGI worker has a fixed number of threads. When slow clients or slow requests hold them
all, a liveness probe waits in the queue, times out, and Kubernetes restarts a pod that was
merely busy, which makes the overload worse. fender's threaded worker
(:mod:`fender.runtime.gthread_worker`) reads each request head on its main thread and, for a
path offered here, answers at once from that thread.

The app's runtime offers its liveness endpoint when it is built; the offer is held weakly,
so a dropped app (test suites build hundreds) is never kept alive by it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable

__all__ = ["Answer", "answer", "offer"]

Answer = tuple[int, list[tuple[str, str]], bytes]
"""Status, headers and body."""

_lock = threading.Lock()
_offers: dict[str, weakref.ref[Callable[[], Answer]]] = {}


def offer(paths: Iterable[str], responder: Callable[[], Answer]) -> None:
    """Let the server answer GET ``paths`` by calling ``responder`` (held weakly).

    The responder must be cheap, must not block and must not need the request: it runs on
    the server's main thread. A later offer for a path replaces the earlier one.
    """
    ref: weakref.ref[Callable[[], Answer]]
    if hasattr(responder, "__self__"):  # a bound method: hold its object weakly
        ref = weakref.WeakMethod(responder)
    else:
        ref = weakref.ref(responder)
    with _lock:
        for path in paths:
            _offers[path] = ref


def answer(path: str) -> Answer | None:
    """The answer for ``path``, or None when nothing (alive) offers it."""
    ref = _offers.get(path)
    responder = ref() if ref is not None else None
    return None if responder is None else responder()
