"""deploy/nginx.conf: nginx accepts it, and fender behind it names the client nginx saw.

The file is rendered with only its ports, its user and its paths moved into a temporary
directory (each substitution must match, so the real file cannot drift from what is tested),
then checked with ``nginx -t`` and run in front of ``fender run`` of the reference store, with
TLS from a throwaway certificate. The client connects from 127.0.0.2 and nginx reaches the app
from 127.0.0.1 (the one trusted proxy), so the app's idea of the client tells the forwarded
address from the socket peer.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from deploy_servers import ExactEnvServer, store_env

from servers import free_port, http_ready, missing, port_open, wait_for

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
SBIN_PATH = "/usr/sbin:/usr/bin:/bin"
CLIENT = "127.0.0.2"  # not 127.0.0.1, the proxy fender trusts


def nginx_binary() -> str:
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:{SBIN_PATH}")
    if found is None:
        missing("nginx")
    return str(found)


def render(prefix: Path, *, http: int, https: int, app: int) -> Path:
    """deploy/nginx.conf with its ports, user and paths moved; every rule must apply."""
    text = NGINX_CONF.read_text()
    # As root, the workers run as root too (nginx's default user may not read the
    # temporary directory); otherwise nginx ignores the directive, so it goes.
    user = "user root;" if os.geteuid() == 0 else ""
    rules = [
        ("user nginx;", user),
        ("/var/run/nginx.pid", f"{prefix}/nginx.pid"),
        ("/var/log/nginx/", f"{prefix}/log/"),
        ("/var/cache/nginx/", f"{prefix}/cache/"),
        ("/etc/nginx/tls/", f"{prefix}/tls/"),
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{app};"),
    ]
    for old, new in rules:
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    for directory in ("log", "cache", "tls"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    rendered = prefix / "nginx.conf"
    rendered.write_text(text)
    return rendered


def certificate(tls: Path) -> Path:
    """A self-signed certificate for 127.0.0.1, where the config expects it; returns it."""
    if shutil.which("openssl") is None:
        missing("openssl")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return tls / "fullchain.pem"


def nginx_check(binary: str, conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(prefix), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_nginx_accepts_the_config(tmp_path):
    binary = nginx_binary()
    conf = render(tmp_path, http=free_port(), https=free_port(), app=free_port())
    certificate(tmp_path / "tls")
    checked = nginx_check(binary, conf, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr
    # No warning either (a deprecated directive, a conflicting one): nginx says [warn].
    assert "[warn]" not in checked.stderr, checked.stderr


def access_events(output: str) -> list[dict]:
    return [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"logger":"fender.access"' in line
    ]


@pytest.mark.e2e
def test_fender_behind_nginx_sees_the_client_nginx_saw(tmp_path):
    binary = nginx_binary()
    http, https, app = free_port(), free_port(), free_port()
    prefix = tmp_path / "nginx"
    conf = render(prefix, http=http, https=https, app=app)
    cafile = certificate(prefix / "tls")
    checked = nginx_check(binary, conf, prefix)
    assert checked.returncode == 0, checked.stderr

    store = ExactEnvServer(
        ["fender", "run", "examples.kvstore.app:app"],
        ready=http_ready(app),
        port=app,
        env={
            **store_env(tmp_path),
            "FENDER_HOST": "127.0.0.1",
            "FENDER_PORT": str(app),
            "FENDER_TRUSTED_PROXIES": "127.0.0.1",
        },
        cwd=ROOT,
    )
    nginx = ExactEnvServer(
        [binary, "-c", str(conf), "-p", str(prefix), "-e", "stderr", "-g", "daemon off;"],
        ready=lambda: port_open(https) and port_open(http),
        port=https,
        env={"PATH": SBIN_PATH},
        cwd=prefix,
    )
    tls = ssl.create_default_context(cafile=str(cafile))
    client = httpx.Client(
        transport=httpx.HTTPTransport(local_address=CLIENT, verify=tls),
        base_url=f"https://127.0.0.1:{https}",
        timeout=10,
    )
    try:
        store.start()
        nginx.start()

        # A client that forges every forwarding header fender could read.
        forged = {
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=7.7.7.7;proto=http",
            "X-Request-ID": "nginx-e2e-0001",
        }
        written = client.put("/kv/greeting", json={"value": "hello"}, headers=forged)
        assert written.status_code == 200, written.text
        # fender saw https (nginx's X-Forwarded-Proto, not the client's): HSTS.
        assert "max-age=" in written.headers["Strict-Transport-Security"]
        assert written.headers["X-Request-ID"] == "nginx-e2e-0001"  # passed through
        wait_for(
            lambda: any(e["request_id"] == "nginx-e2e-0001" for e in access_events(store.output())),
            10,
            "the app's access event",
        )
        event = next(
            e for e in access_events(store.output()) if e["request_id"] == "nginx-e2e-0001"
        )
        # The address nginx saw, not the forged one, not nginx's own.
        assert event["client"] == CLIENT
        assert event["route"] == "/kv/{key}"
        read = client.get("/kv/greeting")
        assert read.json()["value"] == "hello"

        # Without an id, nginx makes one; its log line and the app's share it.
        generated = read.headers["X-Request-ID"]
        assert len(generated) == 32
        log = prefix / "log" / "access.log"
        wait_for(lambda: generated in log.read_text(), 10, "nginx's access line")
        line = next(json.loads(x) for x in log.read_text().splitlines() if generated in x)
        assert line["client"] == CLIENT
        assert line["status"] == 200

        # A head fender accepts (under FENDER_MAX_HEADER_BYTES) is not refused by nginx
        # (its default buffers would answer 400 to any line over 8k).
        big = client.get("/kv/greeting", headers={"X-Padding": "x" * 20_000})
        assert big.status_code == 200

        # /metrics: not public; the app still serves it on its own port.
        assert client.get("/metrics").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{app}/metrics", timeout=10).status_code == 200
        # Control: the same request straight to the app over http gets no HSTS.
        direct = httpx.get(f"http://127.0.0.1:{app}/kv/greeting", timeout=10)
        assert "Strict-Transport-Security" not in direct.headers

        # Plain http only redirects to https.
        redirect = httpx.get(f"http://127.0.0.1:{http}/kv/greeting", timeout=10)
        assert redirect.status_code == 301
        assert redirect.headers["Location"] == "https://127.0.0.1/kv/greeting"
    finally:
        client.close()
        nginx.close()  # SIGTERM to the master's PID (daemon off: the process started)
        store.close()
    assert not port_open(https)
