"""Mutation testing of the sans-I/O cores (`make mutate`); not part of `make test`.

mutmut (3.x) copies ``src/`` and ``tests/`` to ``mutants/``, changes one operator, constant or
call at a time in the modules of :data:`CORES`, and runs the unit tests that execute the
changed function. A mutant no test notices is a change of behaviour nobody would see. This
prints, per core, the share of non-equivalent mutants killed and exits 1 if any core is under
:data:`THRESHOLD`.

Usage::

    python scripts/mutate.py            # a fresh run over every core, then the report
    python scripts/mutate.py --keep     # reuse mutants/ (mutant generation, test mapping)
    python scripts/mutate.py report     # the report of the last run only
    python scripts/mutate.py mutmut show fender.ratelimit._gcra.x_gcra_step__mutmut_3
    python scripts/mutate.py mutmut browse   # mutmut's own commands, with the cores' config

mutmut reads its settings from ``[tool.mutmut]`` in pyproject.toml; the files to mutate and
the tests to run come from :data:`CORES`, so one more core is one more entry there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 95.0
"""The least share of non-equivalent mutants a core's tests must kill, in percent."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Core:
    """One module under mutation testing.

    Attributes:
        module: the source file, relative to the repository root.
        tests: the fast unit tests that may kill its mutants (never the e2e suite). mutmut
            runs one test selection: each mutant meets every listed test, of any core, that
            executes the function it changed.
        equivalent: mutants that behave exactly as the original, by mutmut's name without the
            module (``x_gcra_step__mutmut_3``, ``xǁLimitǁ__post_init____mutmut_7``), each with
            the reason no test can tell them apart. They leave the count.
    """

    module: str
    tests: tuple[str, ...]
    equivalent: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def dotted(self) -> str:
        """The module's import path, the prefix of its mutants' names."""
        return self.module.removeprefix("src/").removesuffix(".py").replace("/", ".")


_RL = "tests/ratelimit/"
_STRICT_ZIP = "zip(strict=True) over lists of one length; the other loop's zip checks the input"
_ZIP_OF_NAMES = "zip(strict=True) of the limits and the names made from them, one per limit"

CORES: tuple[Core, ...] = (
    Core(
        module="src/fender/ratelimit/_gcra.py",
        tests=(
            f"{_RL}test_ratelimit_gcra.py",
            f"{_RL}test_ratelimit_fastpath.py",
            f"{_RL}test_gcra_mutants.py",
        ),
        equivalent={
            "x_gcra_step__mutmut_4": "tat == now: max() of the two is now either way",
            "x_gcra_step__mutmut_20": "reset == tolerance: (tolerance - reset) // emission is 0",
            "x_decide_one__mutmut_30": "capacity(None) is the count, as for the sliding window",
            "x_check_cost__mutmut_3": "fast path cost > 0: a cost of 0 passes the full check",
            "x_check_cost__mutmut_4": "fast path cost >= 1: a cost of 0 passes the full check",
            "x__evaluate_many__mutmut_21": _STRICT_ZIP,
            "x__evaluate_many__mutmut_24": _STRICT_ZIP,
            "x__evaluate_many__mutmut_25": _STRICT_ZIP,
            "x__evaluate_many__mutmut_46": "the first rank is never read: binding is None then",
            "x__evaluate_many__mutmut_47": "the first rank is never read: binding is None then",
            "x__evaluate_many__mutmut_48": "the first rank is never read: binding is None then",
            "x__evaluate_many__mutmut_52": _STRICT_ZIP,
            "x__evaluate_many__mutmut_56": _STRICT_ZIP,
            "x__evaluate_many__mutmut_57": _STRICT_ZIP,
            "x__evaluate_many__mutmut_100": "a rejection ranks by (-retry, c): c is one constant",
        },
    ),
    Core(
        module="src/fender/ratelimit/_sliding.py",
        tests=(
            f"{_RL}test_ratelimit_gcra.py",
            f"{_RL}test_ratelimit_fastpath.py",
            f"{_RL}test_sliding_mutants.py",
        ),
        equivalent={
            "x_sliding_step__mutmut_60": "free == 0: free // window is 0 either way",
            "x_sliding_step__mutmut_69": (
                "unit == 2 for unit == 1: units are 1 or powers of ten, and at 1 the conversion"
                " to microseconds is the identity (t == now)"
            ),
        },
    ),
    Core(
        module="src/fender/ratelimit/_policy.py",
        tests=(f"{_RL}test_ratelimit_policy.py", f"{_RL}test_policy_mutants.py"),
        equivalent={
            "xǁLimitǁ__post_init____mutmut_82": "next()'s default None for 0: both falsy",
            "xǁLimitǁ__post_init____mutmut_90": (
                "period_us / 10**k for //: period_us is a multiple of 10**6, so the quotient is"
                " exact, and products near 2**50 are exact in a double"
            ),
            "xǁRateLimitPolicyǁ__post_init____mutmut_85": _ZIP_OF_NAMES,
            "xǁRateLimitPolicyǁ__post_init____mutmut_88": _ZIP_OF_NAMES,
            "xǁRateLimitPolicyǁ__post_init____mutmut_89": _ZIP_OF_NAMES,
            "xǁRateLimitPolicyǁ__post_init____mutmut_102": _ZIP_OF_NAMES,
            "xǁRateLimitPolicyǁ__post_init____mutmut_105": _ZIP_OF_NAMES,
            "xǁRateLimitPolicyǁ__post_init____mutmut_106": _ZIP_OF_NAMES,
        },
    ),
    Core(
        module="src/fender/health/_check.py",
        tests=(
            "tests/health/test_health_check.py",
            "tests/health/test_health_json_safe.py",
            "tests/health/test_sanitize_urls.py",
            "tests/health/test_aggregate_mutants.py",
        ),
        equivalent={
            "xǁCheckǁ__post_init____mutmut_55": "allow_zero=None is falsy like False",
        },
    ),
    Core(
        module="src/fender/health/_sanitize.py",
        tests=(
            "tests/health/test_health_json_safe.py",
            "tests/health/test_sanitize_urls.py",
            "tests/health/test_aggregate_mutants.py",
        ),
        equivalent={"x__text__mutmut_7": "codec names are case-insensitive: UTF-8 is utf-8"},
    ),
    Core(
        module="src/fender/runtime/_lifecycle.py",
        tests=("tests/runtime/test_lifecycle.py", "tests/runtime/test_lifecycle_mutants.py"),
    ),
)

# mutmut's exit codes of a mutant's test run, read from mutants/<module>.meta.
_KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # tests failed, errored, timed out or mypy refused
_SURVIVED = {0, 5, 33}  # tests passed, or no test runs the function


def main(argv: Sequence[str] | None = None) -> int:
    """Run mutmut over the cores and report, or pass a command through to mutmut."""
    args = list(sys.argv[1:] if argv is None else argv)
    os.chdir(ROOT)
    if args[:1] == ["mutmut"]:
        return _mutmut(args[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("run", "report"), default="run")
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ from the last run")
    options = parser.parse_args(args)
    if options.command == "run":
        started = time.monotonic()
        if not options.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        # mutmut keeps the results it has unless the mutants are named: name them to rerun.
        patterns = [f"{core.dotted}.*" for core in CORES] if options.keep else []
        # A child process: mutmut exits, forks and prints progress as it likes.
        command = [sys.executable, __file__, "mutmut", "run", *patterns]
        done = subprocess.run(command, check=False, cwd=ROOT)  # noqa: S603  (our own script)
        if done.returncode != 0:
            print(f"mutmut run failed (exit {done.returncode})")
            return 1
        print(f"mutmut ran in {time.monotonic() - started:.0f} s")
    return report(CORES)


def _mutmut(args: list[str]) -> int:
    """Run a mutmut command with the files and tests of :data:`CORES`."""
    from mutmut import configuration

    base = configuration.config()
    tests = sorted({test for core in CORES for test in core.tests})
    configuration._config = dataclasses.replace(  # noqa: SLF001  (mutmut has no other way in)
        base,
        only_mutate=[core.module for core in CORES],
        # This file is on sys.path (it runs as a script): pytest loads it as a plugin.
        pytest_add_cli_args=[*base.pytest_add_cli_args, "-p", Path(__file__).stem],
        pytest_add_cli_args_test_selection=tests,
    )
    from mutmut.__main__ import cli

    cli.main(args, prog_name="mutmut")
    return 0


def pytest_configure(config: object) -> None:  # noqa: ARG001  (pytest's hook signature)
    """Load the Hypothesis profile of mutation runs (a pytest hook: see :func:`_mutmut`).

    mutmut runs pytest in its own process and in forks of it. Shrinking a failing example
    costs seconds and a kill needs none; no database and fixed examples keep a run's score
    independent of the runs before it. This runs after the conftest has loaded its profile.
    """
    from hypothesis import Phase, settings

    settings.register_profile(
        "mutate",
        deadline=None,
        database=None,
        derandomize=True,
        phases=(Phase.explicit, Phase.generate),
    )
    settings.load_profile("mutate")


def report(cores: Sequence[Core]) -> int:
    """Print each core's score from mutants/; 1 if one is under the threshold or stale."""
    failed = False
    print(f"{'core':36} {'killed':>7} {'of':>5} {'equiv':>6} {'score':>7}")
    for core in cores:
        outcome = _score(core)
        if outcome is None:
            print(f"{core.module:36} no results: run `make mutate`")
            failed = True
            continue
        killed, counted, survivors, stale = outcome
        score = 100.0 * killed / counted if counted else 100.0
        low = score < THRESHOLD
        failed = failed or low or bool(stale)
        mark = "  UNDER" if low else ""
        equivalent = len(core.equivalent) - len(stale)
        print(f"{core.module:36} {killed:7} {counted:5} {equivalent:6} {score:6.1f}%{mark}")
        for name in survivors:
            print(f"    survived: {name}")
        for name in stale:
            print(f"    listed as equivalent but killed or unknown (mend CORES): {name}")
    print(f"threshold: {THRESHOLD:.0f}% of the non-equivalent mutants of each core")
    return 1 if failed else 0


def _score(core: Core) -> tuple[int, int, list[str], list[str]] | None:
    """``(killed, counted, surviving names, stale equivalents)`` of ``core``'s last run."""
    meta = ROOT / "mutants" / f"{core.module}.meta"
    if not meta.exists():
        return None
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    prefix = f"{core.dotted}."
    statuses: Counter[str] = Counter()
    survivors: list[str] = []
    known = {name.removeprefix(prefix) for name in codes}
    stale = sorted(set(core.equivalent) - known)  # renamed or gone: the table must follow
    for name, code in sorted(codes.items()):
        short = name.removeprefix(prefix)
        killed = code in _KILLED
        if short in core.equivalent:
            if killed:
                stale.append(short)
            continue
        statuses["killed" if killed else "counted"] += 1
        if not killed:
            # Not run, skipped or suspicious counts against the core too.
            survivors.append(f"{name} ({_status(code)})")
    killed = statuses["killed"]
    return killed, killed + statuses["counted"], survivors, stale


def _status(code: int | None) -> str:
    if code in _SURVIVED:
        return "survived" if code == 0 else "no tests"
    return "not run" if code is None else f"exit {code}"


if __name__ == "__main__":
    sys.exit(main())
