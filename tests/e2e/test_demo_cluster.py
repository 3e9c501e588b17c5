"""`make demo-cluster` (scripts/demo-cluster.sh): the script parses, its Prometheus configuration
is one promtool accepts, and a run brings up the cluster, which Ctrl-C stops to the last PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from servers import CommandServer, free_port, missing, wait_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "demo-cluster.sh"
APP = "examples.kvstore.app:app"
STARTED = ("redis-a", "redis-b", "cp", "ap", "prometheus")


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        package = "prometheus" if name == "promtool" else name
        missing(f"{name} (Debian package {package})")
    assert found is not None  # missing() skips or fails
    return found


def ports() -> dict[str, str]:
    names = ("REDIS_A_PORT", "REDIS_B_PORT", "CP_PORT", "AP_PORT", "PROMETHEUS_PORT")
    chosen: set[int] = set()
    while len(chosen) < len(names):
        chosen.add(free_port())
    return dict(zip(names, map(str, sorted(chosen)), strict=True))


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_generated_prometheus_config_passes_promtool(tmp_path):
    promtool = binary("promtool")
    env = {**os.environ, **ports()}
    config = subprocess.run(
        ["bash", str(SCRIPT), "--print-config"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"'127.0.0.1:{env['CP_PORT']}'" in config
    assert f"'127.0.0.1:{env['AP_PORT']}'" in config
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    checked = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_unknown_argument_is_refused():
    refused = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, check=False)
    assert refused.returncode == 2


@pytest.mark.e2e
def test_the_cluster_comes_up_is_scraped_and_ctrl_c_stops_every_process(tmp_path):
    for name in ("redis-server", "prometheus"):
        binary(name)
    chosen = ports()
    cluster = tmp_path / "cluster"
    script = CommandServer(
        ["bash", str(SCRIPT)],
        port=int(chosen["AP_PORT"]),  # the last instance up: then the script starts Prometheus
        cwd=ROOT,
        env={
            **chosen,
            "BIN": str(Path(sys.executable).parent),
            "CLUSTER_APP": APP,
            "CLUSTER_DIR": str(cluster),
            "WEB_WORKERS": "1",
            "FENDER_ENV": "",
            "REDIS_URL": "",
            "DATABASE_URL": "",
            "PROMETHEUS_MULTIPROC_DIR": "",
        },
        ready_path="/health/live",
    )
    script.start()
    stopped = ""
    try:
        wait_for(lambda: "Ctrl-C stops all of it" in script.output(), 60, "the cluster's URLs")
        output = script.output()
        for port in (chosen["CP_PORT"], chosen["AP_PORT"]):
            assert f"http://127.0.0.1:{port}/status" in output
            answer = httpx.get(f"http://127.0.0.1:{port}/status", timeout=10)
            assert answer.status_code == 200  # development: open from loopback
        prometheus = f"http://127.0.0.1:{chosen['PROMETHEUS_PORT']}"

        def both_scraped() -> bool:
            query = httpx.get(
                f"{prometheus}/api/v1/query", params={"query": 'up{job="kvstore"} == 1'}, timeout=10
            )
            return len(query.json()["data"]["result"]) == 2

        wait_for(both_scraped, 60, "Prometheus scraping both instances")
        # The partition the script suggests, left in place: Ctrl-C must still stop redis B.
        paused = re.search(r"kill -STOP (\d+) \(redis B", script.output())
        assert paused is not None, script.output()
        os.kill(int(paused[1]), signal.SIGSTOP)
        # What the script says the partition shows: CP refuses, AP accepts.
        cp_url = f"http://127.0.0.1:{chosen['CP_PORT']}"
        ap_url = f"http://127.0.0.1:{chosen['AP_PORT']}"
        assert httpx.post(f"{ap_url}/write/split/ap", timeout=30).status_code == 200
        refused = httpx.post(f"{cp_url}/write/split/cp", timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["reason"] == "peer_unreachable"
        os.kill(script.pid, signal.SIGINT)  # what Ctrl-C sends the script (its children: not)
        assert script.process is not None
        assert script.process.wait(timeout=90) == 130
    finally:
        stopped = script.output()
        script.close()
    pids = dict(re.findall(r"stopping (\S+) \(pid (\d+)\)", stopped))
    assert sorted(pids) == sorted(STARTED), stopped
    for pid in map(int, pids.values()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    logs = cluster / "logs"
    for name in ("cp", "ap"):
        assert "Shutting down: Master" in (logs / f"{name}.log").read_text()
    assert (cluster / "redis-a" / "appendonlydir").is_dir()
