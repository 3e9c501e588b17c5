"""The public API: sorted, importable, documented; and the import contract holds."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import fender

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(fender.__path__, "fender.") if ".__" not in m.name
)


def isort_order(names):
    """ruff's RUF022 order: CONSTANTS, then Classes, then everything else, each alphabetical."""

    def key(name: str) -> tuple[int, str]:
        if name.isupper() and len(name) > 1:
            return (0, name)
        return (1, name) if name[:1].isupper() else (2, name)

    return sorted(names, key=key)


def test_all_is_sorted_and_importable():
    assert fender.__all__ == isort_order(fender.__all__)
    for name in fender.__all__:
        assert getattr(fender, name) is not None, name


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_a_sorted_all_of_documented_names(module):
    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    if exported is None:
        pytest.fail(f"{module} has no __all__")
    assert list(exported) == isort_order(exported), module
    for name in exported:
        obj = getattr(mod, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith(
            "fender"
        ):
            assert (obj.__doc__ or "").strip(), f"{module}.{name} has no docstring"


def test_py_typed_is_shipped():
    assert (Path(fender.__file__).parent / "py.typed").exists()


def test_import_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint)], check=False, capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The public surface: these modules, and the names in their __all__. Every other module is
# internal: a name with a leading underscore on its path, or inside an internal package.
FACADES = {
    "fender",
    "fender.asgi",
    "fender.cache",
    "fender.cli",
    "fender.db",
    "fender.doctor",
    "fender.errors",
    "fender.flask",
    "fender.health",
    "fender.monitor",
    "fender.observability",
    "fender.ratelimit",
    "fender.redis",
    "fender.security",
    "fender.resilience",
    "fender.runtime",
    "fender.runtime.gunicorn_conf",
    "fender.runtime.gthread_worker",
    "fender.runtime.uvicorn_worker",
    "fender.settings",
    "fender.stores",
    "fender.testing",
    "fender.wsgi",
}
INTERNAL_PACKAGES = ("fender.app", "fender.apps", "fender.frameworks", "fender.http",
                     "fender.middleware")  # fmt: skip


def is_internal(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")) or module.startswith(
        tuple(p + "." for p in INTERNAL_PACKAGES) + INTERNAL_PACKAGES
    )


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_a_facade_or_clearly_internal(module):
    assert module in FACADES or is_internal(module), (
        f"{module} is neither a facade nor internal: prefix it with _ or move it into a facade"
    )


def test_each_public_name_has_one_facade():
    """One public path per object: no two facades export it (the root's shortcuts aside).

    Two facades may each have their own object of one name (``fender.asgi.wrap`` and
    ``fender.wsgi.wrap``); the same object under two paths is what is refused.
    """
    homes: dict[tuple[str, int], list[str]] = {}
    for module in sorted(FACADES - {"fender"}):
        mod = importlib.import_module(module)
        for name in mod.__all__:
            homes.setdefault((name, id(getattr(mod, name))), []).append(module)
    twice = {name: where for (name, _), where in homes.items() if len(where) > 1}
    assert not twice, twice


def test_the_root_shortcuts_are_the_facades_objects():
    """``fender.X`` is the very object of its facade (README paths), never a copy."""
    for name in fender.__all__:
        value = getattr(fender, name)
        homes = [
            m
            for m in sorted(FACADES - {"fender"})
            if name in getattr(importlib.import_module(m), "__all__", ())
        ]
        for home in homes:
            assert getattr(importlib.import_module(home), name) is value, (name, home)


def test_import_fender_loads_only_what_it_is_asked_for():
    code = (
        "import sys, fender; before = sorted(m for m in sys.modules if m.startswith('fender'));"
        "fender.CircuitBreaker; after = 'fender.resilience' in sys.modules;"
        "print(before, after, 'starlette' in sys.modules, 'redis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    assert out == "['fender', 'fender._version'] True False False"
