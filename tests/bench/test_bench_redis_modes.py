"""The request-path bench shows a Redis row for each rate-limit mode fender's settings offer."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Literal

import pytest
from pydantic.fields import FieldInfo

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_request_path

    yield bench_request_path
    sys.modules.pop("bench_request_path", None)


def test_one_row_without_a_mode_setting(bench, monkeypatch):
    import fender.settings

    fields = {"rate_limit": FieldInfo(annotation=str, default="1/second")}
    monkeypatch.setattr(fender.settings, "Settings", types.SimpleNamespace(model_fields=fields))
    assert bench.redis_modes() == [("", {})]


def test_a_row_per_mode_when_the_setting_exists(bench, monkeypatch):
    import fender.settings

    mode = FieldInfo(annotation=Literal["lease", "exact"], default="lease")
    fields = {"rate_limit": FieldInfo(annotation=str, default="1/second"), "rate_limit_mode": mode}
    monkeypatch.setattr(fender.settings, "Settings", types.SimpleNamespace(model_fields=fields))
    assert bench.redis_modes() == [
        (", rate_limit_mode=lease", {"rate_limit_mode": "lease"}),
        (", rate_limit_mode=exact", {"rate_limit_mode": "exact"}),
    ]
