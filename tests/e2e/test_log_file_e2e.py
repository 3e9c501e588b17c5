"""Real gunicorn, two workers writing one FENDER_LOG_FILE rotated small: no access line lost
or torn, at most backups + 1 files, none over the limit, no secret in any of them.

The master configures logging (and opens the file) before it forks the workers, as in
production: the workers write through what they inherited.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import orjson
import pytest

from served_gunicorn import WORKERS, gunicorn

pytestmark = pytest.mark.e2e

REQUESTS = 300
MAX_BYTES = int(0.02 * 1024 * 1024)  # FENDER_LOG_FILE_MAX_MB=0.02
BACKUPS = 50  # enough to keep every line of the run: the test counts them


def request_id(n: int) -> str:
    return f"e2e-log-{n:06d}"


@pytest.mark.parametrize("worker", list(WORKERS))
def test_gunicorn_workers_share_the_rotated_log_file(tmp_path, worker):
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    server = gunicorn(
        worker,
        tmp_path,
        FENDER_LOG_FILE=str(log),
        FENDER_LOG_FILE_MAX_MB="0.02",
        FENDER_LOG_FILE_BACKUPS=str(BACKUPS),
        FENDER_RATE_LIMIT_ENABLED="false",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    server.start()
    try:

        def get(n: int) -> int:
            headers = {
                "X-Request-ID": request_id(n),
                "User-Agent": f"e2e token=tok-{n:06d}-secret",
                "Authorization": f"Bearer bearer-{n:06d}-secret",
            }
            return httpx.get(f"{server.url}/items/{n}", headers=headers, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(get, range(REQUESTS))) == {200}
    finally:
        server.terminate()
        server.close()

    files = [log, *(log.with_name(f"app.log.{i}") for i in range(1, BACKUPS + 1))]
    files = [f for f in files if f.exists()]
    assert len(files) > 3  # it rotated, with both workers writing
    assert all(f.stat().st_size <= MAX_BYTES for f in files)
    events = []
    for file in files:
        data = file.read_bytes()
        assert data.endswith(b"\n")
        events.extend(orjson.loads(line) for line in data.splitlines())  # a torn line fails
    access = [e for e in events if e.get("event") == "request" and e["route"] != "/metrics"]
    assert sorted(e["request_id"] for e in access) == [request_id(n) for n in range(REQUESTS)]
    text = "".join(f.read_text() for f in files)
    assert "-secret" not in text
    assert access[0]["user_agent"].startswith("e2e token=[REDACTED]")
