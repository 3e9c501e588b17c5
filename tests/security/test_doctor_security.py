"""`fender doctor` refuses the security settings install would refuse, naming them."""

from __future__ import annotations

import pytest

from fender._status import Status
from fender.doctor import diagnose


def security(**environ: str):
    report = diagnose({"FENDER_ENV": "development", **environ}, env_file=None)
    (finding,) = [f for f in report.findings if f.check == "security"]
    return finding


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"FENDER_CSP": "default-src self"}, "FENDER_CSP"),
        ({"FENDER_CSP": "default-src 'self'; script-src *; script-src 'none'"}, "FENDER_CSP"),
        ({"FENDER_HSTS_PRELOAD": "true", "FENDER_HSTS_MAX_AGE": "600"}, "FENDER_HSTS"),
        ({"FENDER_CORS_ORIGINS": "*", "FENDER_CORS_CREDENTIALS": "true"}, "FENDER_CORS"),
        ({"FENDER_ALLOWED_HOSTS": "example.com:8000"}, "FENDER_ALLOWED_HOSTS"),
    ],
)
def test_a_policy_install_would_refuse_fails(environ, named):
    finding = security(**environ)
    assert finding.status is Status.FAIL
    assert named in finding.reason


def test_the_defaults_compile():
    assert security().status is Status.PASS
