"""The reference store as a real process: `fender run examples.kvstore.app:app` on a free port."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from servers import CommandServer, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def kv_instance(
    tmp_path: Path,
    name: str,
    mode: str,
    local: str,
    peer: str,
    *,
    ready_path: str = "/health/live",
    **extra: str,
) -> CommandServer:
    """Start an instance in ``mode`` over the nodes ``local`` and ``peer`` (URLs); ``extra``: env.

    Production settings, two workers, rate limits off (a test's stream of requests from one
    address is not an abuse), short node timeouts; state under ``tmp_path / name``.
    """
    port = free_port()
    env = {
        "FENDER_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FENDER_HOST": "127.0.0.1",
        "FENDER_PORT": str(port),
        "WEB_WORKERS": "2",
        "MEMORY_LIMIT_MB": "1024",
        "FENDER_RATE_LIMIT_ENABLED": "false",
        "FENDER_RUNTIME_DIR": str(tmp_path / name / "run"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / name / "metrics"),
        "HOME": str(tmp_path / name),
        "PYTHONPATH": str(ROOT),
        "KV_MODE": mode,
        "KV_LOCAL_URL": local,
        "KV_PEER_URL": peer,
        "NETWORK_TIMEOUT_SEC": "0.2",
        "REDIS_URL": "",
        "DATABASE_URL": "",
        **extra,
    }
    server = CommandServer(
        [str(BIN / "fender"), "run", "examples.kvstore.app:app"],
        port=port,
        cwd=ROOT,
        env=env,
        ready_path=ready_path,
    )
    server.start()
    return server
