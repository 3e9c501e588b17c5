"""The security settings: response headers, the edge (HTTPS, hosts, CORS, cookies), hardening.

A mixin of :class:`~fender.settings.Settings`, kept apart so that the main model stays one
screenful of each concern; the fields behave exactly as the others (environment names,
one declared default, ``fender env`` and the README table read them from here).
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings

from fender.settings._fields import env_field

__all__ = ["SecurityFields"]


class SecurityFields(BaseSettings):
    """Fields of issue 11: headers, CSP, HSTS, HTTPS, hosts, CORS, cookies, bounds, events."""

    # Response headers (fender.security).
    security_headers: bool = env_field(
        "FENDER_SECURITY_HEADERS",
        default=True,
        description="Add the security headers (CSP, HSTS on https, X-Content-Type-Options...) "
        "to every response.",
    )
    security_profile: Literal["web", "api"] = env_field(
        "FENDER_SECURITY_PROFILE",
        default="web",
        description="Header defaults: web (helmet's, for pages) or api (CSP default-src 'none'; "
        "frame-ancestors 'none', for JSON services).",
    )
    csp: str = env_field(
        "FENDER_CSP",
        default="",
        description="A Content-Security-Policy replacing the profile's, validated at start-up; "
        "'none' sends no CSP.",
    )
    csp_report_only: bool = env_field(
        "FENDER_CSP_REPORT_ONLY",
        default=False,
        description="Send the policy as Content-Security-Policy-Report-Only (reports, blocks "
        "nothing).",
    )
    csp_report_uri: str = env_field(
        "FENDER_CSP_REPORT_URI",
        default="",
        description="Where browsers report CSP violations (report-uri, and report-to through "
        "Reporting-Endpoints).",
    )
    hsts_max_age: int = env_field(
        "FENDER_HSTS_MAX_AGE",
        default=31536000,
        ge=0,
        le=10 * 31536000,
        description="Strict-Transport-Security max-age in seconds (sent on https only); 0 "
        "sends none.",
    )
    hsts_include_subdomains: bool = env_field(
        "FENDER_HSTS_INCLUDE_SUBDOMAINS",
        default=True,
        description="HSTS includeSubDomains.",
    )
    hsts_preload: bool = env_field(
        "FENDER_HSTS_PRELOAD",
        default=False,
        description="HSTS preload (needs max-age >= 31536000 and includeSubDomains).",
    )
    hide_versions: bool | None = env_field(
        "FENDER_HIDE_VERSIONS",
        default=None,
        description="Hide Python, framework and fender versions (/health/version, "
        "app_build_info, Server) from the unauthenticated; empty: on in production.",
    )

    # The edge: HTTPS, hosts, CORS, cookies (fender.security, fender.http).
    force_https: bool = env_field(
        "FENDER_FORCE_HTTPS",
        default=False,
        description="Redirect http to https (308; 301 for GET and HEAD); health endpoints "
        "exempt; off in development.",
    )
    https_exempt: str = env_field(
        "FENDER_HTTPS_EXEMPT",
        default="",
        description="Comma-separated path prefixes served over http too when FENDER_FORCE_HTTPS "
        "is on (the health endpoints always are).",
    )
    allowed_hosts: str = env_field(
        "FENDER_ALLOWED_HOSTS",
        default="",
        description="Comma-separated host names (*.example.com for subdomains) the service "
        "answers; others get 400. Empty: any.",
    )
    cors_origins: str = env_field(
        "FENDER_CORS_ORIGINS",
        default="",
        description="Comma-separated origins (https://app.example.com) allowed to call the API "
        "from browsers; * for any; empty: no CORS.",
    )
    cors_methods: str = env_field(
        "FENDER_CORS_METHODS",
        default="GET,POST,PUT,PATCH,DELETE",
        description="Methods allowed in CORS requests.",
    )
    cors_headers: str = env_field(
        "FENDER_CORS_HEADERS",
        default="Authorization,Content-Type,X-Request-ID",
        description="Request headers allowed in CORS requests.",
    )
    cors_expose_headers: str = env_field(
        "FENDER_CORS_EXPOSE_HEADERS",
        default="X-Request-ID,RateLimit,RateLimit-Policy,Retry-After",
        description="Response headers browsers may read.",
    )
    cors_credentials: bool = env_field(
        "FENDER_CORS_CREDENTIALS",
        default=False,
        description="Allow cookies and credentials in CORS requests (never with origin *).",
    )
    cors_max_age: int = env_field(
        "FENDER_CORS_MAX_AGE",
        default=600,
        ge=0,
        le=86400,
        description="Seconds browsers may cache a preflight answer.",
    )
    secure_cookies: bool = env_field(
        "FENDER_SECURE_COOKIES",
        default=True,
        description="Session and CSRF cookies get Secure (on https), HttpOnly and SameSite=Lax.",
    )

    # Hardening: bounds, operational endpoints, events.
    max_header_bytes: int = env_field(
        "FENDER_MAX_HEADER_BYTES",
        default=32768,
        ge=1024,
        le=1048576,
        description="Largest request head (request line and headers) in bytes; more gets 431.",
    )
    max_header_count: int = env_field(
        "FENDER_MAX_HEADER_COUNT",
        default=100,
        ge=10,
        le=1000,
        description="Most request header lines; more gets 431.",
    )
    metrics_protected: bool = env_field(
        "FENDER_METRICS_PROTECTED",
        default=False,
        description="Serve /metrics only to the admin token or CIDRs, like /status.",
    )
    metrics_cache_seconds: float = env_field(
        "FENDER_METRICS_CACHE_SECONDS",
        default=1.0,
        ge=0,
        le=60,
        description="Reuse one /metrics rendering for this long (scrapers cannot make it a CPU "
        "sink); 0: render each time.",
    )
    security_event_threshold: int = env_field(
        "FENDER_SECURITY_EVENT_THRESHOLD",
        default=10,
        ge=1,
        le=1000000,
        description="Rate-limit rejections of one key in a minute that make a security_event.",
    )
