"""structlog loads without rich for JSON logs, and colored console logs still get rich's
tracebacks (see fender.observability._structlog). Each case in a fresh interpreter: whether
rich is loaded is a property of the whole process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("rich")  # the dev extra; without it there is nothing to hide or give back

SETUP = """
import io, sys
from fender.observability import configure_logging
from fender.settings import load_settings
"""


def run(script: str, setup: str = SETUP) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FENDER_")}
    done = subprocess.run(
        [sys.executable, "-c", setup + script],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_json_logs_load_no_rich():
    out = run(
        "configure_logging(load_settings({'FENDER_ENV': 'production'}, env_file=None),"
        " stream=io.StringIO())\n"
        "print('rich' in sys.modules, 'pygments' in sys.modules)"
    )
    assert out == "False False"


def test_colored_console_logs_draw_tracebacks_with_rich():
    out = run(
        "settings = load_settings({'FENDER_ENV': 'development', 'FENDER_LOG_REDACT': '0'},"
        " env_file=None)\n"
        "configure_logging(settings, fmt='console', stream=io.StringIO())\n"
        "import structlog.dev\n"
        "print(structlog.dev.default_exception_formatter is structlog.dev.rich_traceback)"
    )
    assert out == "True"


def test_an_app_that_loaded_structlog_first_keeps_rich():
    out = run(
        "import fender.observability\nprint(structlog.dev.rich is not None)", "import structlog\n"
    )
    assert out == "True"
