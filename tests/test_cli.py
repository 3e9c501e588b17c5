from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from fender.cli import main
from fender.settings import load_settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No fender variable from the developer's shell, and no .env in the working directory."""
    for name in list(os.environ):
        if name.startswith(
            ("FENDER_", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "FLASK_", "APP_ENV")
        ):
            monkeypatch.delenv(name)
    # This is a pytest run: without it, testing mode would turn the failures into warnings.
    monkeypatch.setenv("FENDER_TESTING", "0")
    monkeypatch.chdir(tmp_path)


def test_doctor_fails_on_a_short_key_and_names_it(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("FENDER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "short")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "[FAIL] secret_key" in out
    assert "SECRET_KEY" in out
    assert "short" not in out.replace("fewer", "")


def test_doctor_passes_the_settings_checks_with_a_good_key(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("FENDER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[FAIL]" not in out
    assert "[pass] secret_key" in out
    # the embedded stores are warnings: --strict makes them count
    assert main(["doctor", "--strict"]) == 1


def test_doctor_reports_an_unparsable_setting(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("MEMORY_LIMIT_MB", "many")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "MEMORY_LIMIT_MB='many'" in out
    assert "fix:" in out


def test_doctor_reads_the_env_file(clean_env, tmp_path, capsys):
    (tmp_path / "prod.env").write_text(
        f"FENDER_ENV=production\nSECRET_KEY={secrets.token_urlsafe(48)}\n"
        "REDIS_URL=redis://cache:6379/0\nDATABASE_URL=postgresql+psycopg://db/app\n"
    )
    assert main(["doctor", "--strict", "--env-file", "prod.env"]) == 0
    assert "0 warnings, 0 failures" in capsys.readouterr().out


def test_a_crashing_doctor_check_is_a_failure_not_a_traceback(clean_env, capsys):
    from fender import doctor

    def broken(settings):
        raise RuntimeError("boom")

    doctor.doctor_check(broken)
    try:
        assert main(["doctor"]) == 2
    finally:
        doctor._CHECKS.remove(broken)
    assert "[FAIL] broken: check raised RuntimeError: boom" in capsys.readouterr().out


def test_env_prints_a_dotenv_that_loads(clean_env, tmp_path, capsys):
    assert main(["env"]) == 0
    (tmp_path / ".env").write_text(capsys.readouterr().out)
    assert load_settings({}, env_file=tmp_path / ".env") == load_settings({}, env_file=None)


def test_env_markdown_is_the_readme_table(capsys):
    assert main(["env", "--format", "markdown"]) == 0
    table = capsys.readouterr().out.strip()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert table in readme, "README's environment table is stale: run `make readme`"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["env", "--help"],
        ["doctor", "--help"],
        ["probe", "--help"],
        ["drain", "--help"],
        ["workers", "--help"],
        ["run", "--help"],
    ],
)
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 0
    assert "usage: fender" in capsys.readouterr().out


def test_console_script_runs(clean_env):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "fender"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("fender ")


def test_probe_passes_on_a_healthy_answer_and_fails_otherwise(clean_env, capsys):
    import http.server
    import threading

    answers = {
        "/ok": (200, b'{"status": "pass"}'),
        "/degraded": (200, b'{"status": "warn"}'),
        "/down": (503, b'{"status": "fail"}'),
        "/plain": (200, b"fine"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, body = answers[self.path]
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["probe", f"{base}/ok"]) == 0
        assert main(["probe", f"{base}/degraded"]) == 0
        assert main(["probe", f"{base}/plain"]) == 0
        assert main(["probe", f"{base}/down"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert main(["probe", f"{base}/ok", "--timeout", "0.5"]) == 1  # nobody listens now
    assert "fail:" in capsys.readouterr().out


def test_drain_raises_the_flag(clean_env, tmp_path, capsys):
    from fender.runtime._drain import drain_flag

    assert main(["drain", "--wait", "0", "--runtime-dir", str(tmp_path)]) == 0
    assert drain_flag(tmp_path).exists()
    assert "draining" in capsys.readouterr().out


def one_error_line(capsys, *fragments):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_drain_with_a_bad_setting_is_one_line_not_a_traceback(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("LOG_LEVEL", "loud")
    assert main(["drain", "--wait", "0"]) == 2
    line = one_error_line(capsys, "fender drain: error:", "LOG_LEVEL=", "DEBUG | INFO")
    assert line.startswith("fender drain: error: ")


def test_drain_into_an_unusable_directory_is_one_line(clean_env, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["drain", "--wait", "0", "--runtime-dir", str(blocker / "run")]) == 2
    one_error_line(capsys, "fender drain: error: cannot raise the drain flag", str(blocker))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("notaurl", "not an http:// or https:// URL"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("file:///etc/passwd", "not an http:// or https:// URL"),
        ("http:///health", "not an http:// or https:// URL"),
        ("http://127.0.0.1:99999/health", "Port out of range"),
    ],
)
def test_probe_of_a_bad_url_is_one_line_not_a_traceback(url, fragment, capsys):
    assert main(["probe", url]) == 2
    one_error_line(capsys, "fender probe: error:", repr(url), fragment)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["probe", "--timeout", "0", "http://127.0.0.1:1/"],
        ["probe", "--timeout", "nan", "http://127.0.0.1:1/"],
        ["probe", "--timeout", "soon", "http://127.0.0.1:1/"],
        ["drain", "--wait", "-1"],
        ["drain", "--wait", "inf"],
        ["drain", "--wait", "nan"],
    ],
)
def test_bad_seconds_are_a_usage_error(clean_env, argv, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "is not a number of seconds" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({"LOG_LEVEL": "loud"}, ["drain", "--wait", "0"]),
        ({}, ["probe", "http://[::1"]),
    ],
)
def test_the_console_script_prints_one_line_and_exits_2(tmp_path, env, argv):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "fender"), *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "FENDER_RUNTIME_DIR": str(tmp_path), **env},
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"fender {argv[0]}: error: ")


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("FENDER_RATE_LIMIT", "lots", "rate_limit"),
        ("FENDER_TRUSTED_PROXIES", "not-a-cidr", "rate_limit"),
        ("FENDER_ADMIN_CIDRS", "nope", "admin"),
        ("FENDER_RATE_LIMIT_PATHS", "/login", "rate_limit"),
        ("FENDER_RATE_LIMIT_ALLOW", "x.y", "rate_limit"),
    ],
)
@pytest.mark.usefixtures("clean_env")
def test_doctor_is_not_ready_when_install_would_refuse(monkeypatch, capsys, name, value, check):
    monkeypatch.setenv("FENDER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv(name, value)
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert f"[FAIL] {check}: {name}=" in out
    assert f"fix: set {name} to " in out
    assert out.rstrip().endswith("not ready")


def test_doctor_judges_the_app_named_with_app(clean_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FENDER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    (tmp_path / "cli_flaskr.py").write_text(
        "from flask import Flask\napp = Flask('flaskr')\napp.secret_key = 'dev'\n"
    )
    path_before = list(sys.path)
    try:
        assert main(["doctor", "--app", "cli_flaskr:app"]) == 2
    finally:
        sys.modules.pop("cli_flaskr", None)
    assert sys.path == path_before  # the working directory was on it for the import only
    out = capsys.readouterr().out
    assert (
        "[FAIL] app_secret_key: Flask's app.secret_key is a known placeholder value -> fix: "
        "load a random key into app.config['SECRET_KEY']"
    ) in out
    assert "[pass] secret_key: SECRET_KEY is set" in out
    assert out.rstrip().endswith("not ready")


def test_doctor_with_a_malformed_app_is_one_line(clean_env, capsys):
    assert main(["doctor", "--app", "shop"]) == 2
    one_error_line(capsys, "fender doctor: error: --app='shop' is invalid", "module:attr")


def test_doctor_without_database_url_says_no_database(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("FENDER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[pass] database: no database is configured (DATABASE_URL is unset)" in out
    assert "SQLite" not in out
