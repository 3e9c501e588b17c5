"""A ready-made check of an HTTP dependency: it answers a URL with an expected status code.

With httpx installed the probe is async (on the registry's event loop), else it is urllib's
(sync, on the registry's thread pool). httpx is imported when :func:`http_check` is called.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Container, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from fender._status import Status
from fender.errors import ConfigurationError
from fender.health._check import DEFAULT_TIMEOUT, Check, CheckResult
from fender.health._sanitize import sanitize

__all__ = ["HttpBackend", "http_check"]

HttpBackend = Literal["auto", "httpx", "urllib"]
"""Which client probes: ``httpx`` (async), ``urllib`` (sync), or ``auto`` (httpx if installed)."""


def http_check(
    url: str,
    *,
    name: str | None = None,
    method: str = "GET",
    timeout: float = DEFAULT_TIMEOUT,
    expect_status: Container[int] = range(200, 400),
    headers: Mapping[str, str] | None = None,
    trust_env: bool = True,
    backend: HttpBackend = "auto",
) -> Check:
    """An HTTP dependency answers ``url`` with an expected status code.

    Redirects are not followed (a 3xx counts as an answer). The body is not read.

    Args:
        url: an ``http`` or ``https`` URL; shown nowhere (its password, if any, never is).
        name: the check name; defaults to ``http-<host>[-<port>]``.
        method: the request method.
        timeout: seconds for the request, and the check's timeout.
        expect_status: status codes that pass (default 200-399); others fail.
        headers: extra request headers (e.g. an auth header: never shown).
        trust_env: honour ``HTTP(S)_PROXY`` / ``NO_PROXY`` from the environment.
        backend: ``httpx`` (async, on the event loop) if installed, else ``urllib`` (sync, on
            the registry's thread pool); ``auto`` picks.

    Observed value: response time in ms (``<name>:responseTime``).
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError("url", sanitize(url), "an http:// or https:// URL with a host")
    if name is None:
        port = f"-{parts.port}" if parts.port else ""  # a bad port raises ValueError here
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"http-{parts.hostname}{port}")[:64]
    if backend == "auto":
        backend = "httpx" if _httpx_available() else "urllib"
    if backend not in {"httpx", "urllib"}:
        raise ConfigurationError("backend", backend, "auto, httpx or urllib")
    method = method.upper()
    sent_headers = dict(headers or {})
    make = _httpx_probe if backend == "httpx" else _urllib_probe
    func = make(url, method, sent_headers, timeout, expect_status, trust_env=trust_env)
    return Check(
        name=name,
        func=func,
        timeout=timeout,
        component_type="component",
        measurement="responseTime",
    )


def _httpx_available() -> bool:
    try:
        import httpx  # noqa: F401  (probing for the optional dependency)
    except ImportError:
        return False
    return True


def _status_result(code: int, elapsed: float, expect: Container[int]) -> CheckResult:
    ok = code in expect
    return CheckResult(
        Status.PASS if ok else Status.FAIL,
        "" if ok else f"HTTP {code}",
        observed_value=round(elapsed * 1000, 3),
        observed_unit="ms",
        details={"status_code": code},
    )


def _httpx_probe(
    url: str,
    method: str,
    headers: dict[str, str],
    timeout: float,
    expect: Container[int],
    *,
    trust_env: bool,
) -> Callable[[], Any]:
    import httpx

    async def http() -> CheckResult:
        # A client per call: an AsyncClient's pool is bound to the loop it first ran on, and
        # the registry may run this on the app's loop or on its own.
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=trust_env
        ) as client:
            started = time.perf_counter()
            async with client.stream(method, url, headers=headers) as response:
                return _status_result(response.status_code, time.perf_counter() - started, expect)

    return http


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises HTTPError carrying the 3xx: an answer, not followed


def _urllib_probe(
    url: str,
    method: str,
    headers: dict[str, str],
    timeout: float,
    expect: Container[int],
    *,
    trust_env: bool,
) -> Callable[[], Any]:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if not trust_env:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)

    def http() -> CheckResult:
        request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310  (scheme checked: http or https)
        started = time.perf_counter()
        try:
            with opener.open(request, timeout=timeout) as response:
                code = int(response.status)
        except urllib.error.HTTPError as exc:  # a 4xx/5xx/3xx is still an answer
            code = exc.code
            exc.close()
        return _status_result(code, time.perf_counter() - started, expect)

    return http
