"""Processes of the deploy tests, run with exactly the environment a deploy file gives them.

Not :class:`servers.CommandServer`, which adds this process's environment: under pytest that
holds ``PYTEST_VERSION`` (fender then relaxes its production rules) and whatever ``FENDER_*``
the developer's shell exports, where an image or a PaaS gives the app nothing of the kind.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from servers import ServerProcess, missing

__all__ = ["ExactEnvServer", "run_probe", "store_env", "venv_bin"]


def venv_bin() -> Path:
    """The directory of this interpreter's scripts (``fender``, ``hadolint``)."""
    return Path(sys.executable).parent


def store_env(tmp_path: Path) -> dict[str, str]:
    """What every host must give the store: production, a secret, two SQLite nodes."""
    return {
        "PATH": f"{venv_bin()}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FENDER_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "MEMORY_LIMIT_MB": "512",
        "FENDER_RUNTIME_DIR": str(tmp_path / "run"),
        "KV_LOCAL_URL": f"sqlite:///{tmp_path / 'kv-local.db'}",
        "KV_PEER_URL": f"sqlite:///{tmp_path / 'kv-peer.db'}",
    }


class ExactEnvServer(ServerProcess):
    """``argv`` run with ``env`` and nothing else; ready when ``ready`` says so."""

    name = "deploy"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        ready: Callable[[], bool],
        port: int,
        env: dict[str, str],
        cwd: str | Path,
    ) -> None:
        """Prepare (not start) the process."""
        super().__init__(port, env=env, cwd=cwd)
        self._argv = list(argv)
        self._ready = ready

    def argv(self) -> Sequence[str]:
        """The command, its program found on the given PATH (as a shell or Docker would)."""
        assert self.env is not None
        found = shutil.which(self._argv[0], path=self.env["PATH"])
        if found is None:
            missing(self._argv[0])
        return [str(found), *self._argv[1:]]

    def ready(self) -> bool:
        """The readiness test given."""
        return self._ready()

    def terminate(self) -> int:
        """SIGTERM (what a platform sends to stop it), wait, and return the exit code."""
        self.stop()
        assert self.process is not None
        return self.process.returncode


def run_probe(argv: Sequence[str], env: dict[str, str]) -> Callable[[], bool]:
    """A readiness test: the command exits 0 (a Docker HEALTHCHECK)."""

    def ready() -> bool:
        done = subprocess.run(list(argv), env=env, capture_output=True, timeout=30, check=False)
        return done.returncode == 0

    return ready
