"""PROMETHEUS_MULTIPROC_DIR set but empty: single-process, no files in the working directory."""

from __future__ import annotations

import os
import subprocess
import sys


def test_an_empty_multiproc_dir_writes_no_files_where_the_process_runs(tmp_path):
    code = (
        "from fender.observability import _metrics as m; "
        "m.counter('probe_count', 'A counter.').inc(); "
        "print(m.multiprocess_dir())"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": ""}
    env.pop("SERVER_SOFTWARE", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
    assert list(tmp_path.iterdir()) == []
