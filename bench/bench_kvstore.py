"""The reference store under load: 100 concurrent clients against the AP instance, 30 s.

Two real redis-servers (the nodes), the store in AP mode served by ``fender run`` with the
worker count fender plans for this machine, fender fully installed (rate limits off: 100
clients on one loopback address would otherwise share one client's budget). wrk keeps 100
keep-alive connections busy with 80% reads and 20% writes over 997 keys; a second round runs
with one node paused (SIGSTOP) to show what a partition costs (every write still accepted,
replication queued).

Run: .venv/bin/python bench/bench_kvstore.py [--seconds 30] [--connections 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from _results import machine_header, markdown_table, publish
from _servers import WRK_DONE, free_port, python_path, wrk
from bench_server import wait_ready

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
KEYS = 997

# wrk: 80% GET /read, 20% POST /write over 997 keys (k0..k996); done() prints one JSON line.
WRK_SCRIPT = (
    r"""
local counter = 0
request = function()
  counter = counter + 1
  local key = "k" .. (counter * 7919 % 997)
  if counter % 5 == 0 then
    return wrk.format("POST", "/write/" .. key .. "/v" .. counter)
  end
  return wrk.format("GET", "/read/" .. key)
end
"""
    + WRK_DONE
)


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("redis-server") is None:
        sys.exit("bench_kvstore needs wrk and redis-server (apt-get install wrk redis-server)")
    with tempfile.TemporaryDirectory(prefix="fender-bench-kv-") as tmp:
        work = Path(tmp)
        script = work / "mix.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        ports = [free_port(), free_port()]
        nodes = [
            start(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(work),
                ],
                work / f"redis-{port}.log",
                dict(os.environ),
            )
            for port in ports
        ]
        app_port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": python_path(ROOT),
            "FENDER_ENV": "production",
            "SECRET_KEY": os.urandom(32).hex(),
            "FENDER_HOST": "127.0.0.1",
            "FENDER_PORT": str(app_port),
            "FENDER_RUNTIME_DIR": str(work / "run"),
            "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
            "FENDER_RATE_LIMIT_ENABLED": "false",
            "GUNICORN_MAX_REQUESTS": "0",
            "KV_MODE": "ap",
            "KV_LOCAL_URL": f"redis://127.0.0.1:{ports[0]}/0",
            "KV_PEER_URL": f"redis://127.0.0.1:{ports[1]}/0",
            "NETWORK_TIMEOUT_SEC": "0.2",
            "REDIS_URL": "",
        }
        server = start(
            [str(BIN / "fender"), "run", "examples.kvstore.app:app"], work / "app.log", env
        )
        rows = []
        try:
            base = f"http://127.0.0.1:{app_port}"
            wait_ready(f"{base}/health/ready", server, START_TIMEOUT)
            config = next(
                json.loads(line)
                for line in (work / "app.log").read_text().splitlines()
                if '"server_config"' in line
            )
            # Every key exists before the load, so that a read answers 200 (not 404).
            for number in range(KEYS):
                request = urllib.request.Request(f"{base}/write/k{number}/v0", method="POST")
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
            wrk(base, 3, 10, script)  # warm-up: workers and connections warm
            for label, pause in (("healthy", False), ("peer node paused (SIGSTOP)", True)):
                if pause:
                    nodes[1].send_signal(signal.SIGSTOP)
                try:
                    result = wrk(base, args.seconds, args.connections, script)
                finally:
                    if pause:
                        nodes[1].send_signal(signal.SIGCONT)
                errors = sum(int(result[k]) for k in ("connect", "read", "write", "timeout"))
                rows.append(
                    [
                        label,
                        f"{result['requests'] / result['seconds']:.0f}",
                        f"{result['p50_ms']:.1f}",
                        f"{result['p95_ms']:.1f}",
                        f"{result['p99_ms']:.1f}",
                        f"{int(result['requests'])}",
                        f"{int(result['non2xx'])}",
                        f"{errors}",
                    ]
                )
        finally:
            stop(server)
            for node in nodes:
                stop(node)
    table = markdown_table(
        ["round", "requests/s", "p50 ms", "p95 ms", "p99 ms", "requests", "non-2xx", "errors"],
        rows,
    )
    intro = (
        f"AP mode, two redis-servers, `fender run` with {config['workers']} workers of "
        f"{config['worker_class'].rsplit('.', 1)[-1]} (threads: {config.get('threads', '-')}), "
        f"wrk -t2 -c{args.connections} -d{args.seconds}s, 80% reads / 20% writes over 997 "
        "keys (all written before the load), every response checked for its status. "
        "Target: no errors, p95 under 200 ms."
    )
    publish(
        "kvstore",
        [
            "## The reference store under load (bench_kvstore.py)",
            machine_header(("flask", "gunicorn", "redis")),
            intro,
            table,
        ],
    )


if __name__ == "__main__":
    main()
