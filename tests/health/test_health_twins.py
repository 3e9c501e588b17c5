"""The registry's sync and async verbs are twins: same names but the ``a`` prefix, same options."""

from __future__ import annotations

import inspect

from fender.health import HealthRegistry

# Each async verb and its sync twin: ``run`` keeps the bare name because it is the algorithm
# (the sync one drives it on a private loop); the others follow ``stop``/``astop``.
ASYNC_TO_SYNC = {"run": "run_sync", "astop": "stop", "aclose": "close"}


def public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_async_verb_has_a_sync_twin_and_back():
    methods = public_methods(HealthRegistry)
    coroutines = {n for n, m in methods.items() if inspect.iscoroutinefunction(m)}
    assert coroutines == set(ASYNC_TO_SYNC)
    for sync_name in ASYNC_TO_SYNC.values():
        assert sync_name in methods, sync_name
        assert not inspect.iscoroutinefunction(methods[sync_name]), sync_name


def test_twins_take_the_same_arguments():
    methods = public_methods(HealthRegistry)
    for async_name, sync_name in ASYNC_TO_SYNC.items():
        async_params = inspect.signature(methods[async_name]).parameters  # type: ignore[arg-type]
        sync_params = inspect.signature(methods[sync_name]).parameters  # type: ignore[arg-type]
        assert list(async_params.items()) == list(sync_params.items()), async_name


def test_stop_stops_the_refresher_and_close_frees_the_threads():
    registry = HealthRegistry()
    registry.add(lambda: True, name="p")
    registry.start()
    registry.stop()
    assert registry.run_sync().status == "pass"  # stopped, not closed: still usable
    registry.close()
    assert registry._private.current is None
    assert registry._runner._executor is None
