"""``fender probe``'s own HTTP GET against servers that answer in every shape HTTP allows."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading

import pytest

from fender._probe import MAX_BODY, get


def serve_once(answer: bytes) -> tuple[str, list[bytes]]:
    """A one-shot server on a free port that answers ``answer`` raw; returns its URL and the
    request it received (filled once the answer is sent)."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            received.append(data)
            # The probe stops reading past MAX_BODY and closes: a reset then is expected.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                conn.sendall(answer)

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", received


def test_a_content_length_body_is_read_to_its_length():
    url, received = serve_once(b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{"status":"pass"}')
    assert get(url + "/health/ready?full=1", 5) == (200, b'{"status":"pass"}')
    request = received[0].decode()
    assert request.startswith("GET /health/ready?full=1 HTTP/1.1\r\n")
    assert "\r\nHost: 127.0.0.1:" in request
    assert "\r\nConnection: close\r\n" in request


def test_a_chunked_body_is_joined():
    url, _ = serve_once(
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'7\r\n{"statu\r\nA;ext=1\r\ns":"fail"}\r\n0\r\n\r\n'
    )
    assert get(url, 5) == (503, b'{"status":"fail"}')


def test_credentials_in_the_url_never_reach_the_host_header():
    url, received = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert get(url.replace("http://", "http://user:secret@"), 5) == (204, b"")
    assert b"secret" not in received[0]


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 abc Bad\r\n\r\n", b""],
    ids=["not-http", "bad-status", "closed"],
)
def test_an_answer_that_is_not_http_is_an_oserror(answer):
    url, _ = serve_once(answer)
    with pytest.raises(OSError, match="not an HTTP"):
        get(url, 5)


def test_a_huge_body_is_not_read_whole():
    url, _ = serve_once(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (4 * MAX_BODY))
    code, body = get(url, 5)
    assert code == 200
    assert len(body) <= MAX_BODY + 65536


def test_the_probe_process_loads_no_framework_and_little_of_fender():
    code = (
        "import sys; from fender.cli import main; "
        "rc = main(['probe', '--timeout', '0.2', 'http://127.0.0.1:1/']); "
        "print(sorted(m for m in sys.modules if m.startswith(('fender', 'starlette', "
        "'flask', 'redis', 'prometheus_client', 'structlog', 'pydantic'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = eval(out.strip().splitlines()[-1])
    assert loaded == ["fender", "fender._probe", "fender._version", "fender.cli", "fender.errors"]
