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
