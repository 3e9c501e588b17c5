"""What ``GET /`` lists: the store's endpoints and fender's, each with what it does."""

from __future__ import annotations

import dataclasses
from collections.abc import Container
from typing import Final

from fender.settings import Settings

__all__ = ["OWN", "Endpoint", "fender_endpoints"]


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One method and path, what it does, and whether only an admin may read it."""

    method: str
    path: str
    description: str
    protected: bool = False

    @property
    def link(self) -> bool:
        """True when a browser can follow it as is (a GET without path parameters)."""
        return self.method == "GET" and "{" not in self.path

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return dataclasses.asdict(self)


OWN: Final = (
    Endpoint("GET", "/", "This page: the service, its mode and nodes, every endpoint."),
    Endpoint("PUT", "/kv/{key}", 'Write {"value": "..."}; answers the version and a token.'),
    Endpoint("GET", "/kv/{key}", "Read a value, its version, node and staleness."),
    Endpoint("DELETE", "/kv/{key}", "Delete a key (a tombstone, replicated like a write)."),
    Endpoint("POST", "/write/{key}/{value}", "Write a value given in the path (older clients)."),
    Endpoint("GET", "/read/{key}", "Read a value (older clients)."),
    Endpoint("GET", "/circuit-breaker", "The breakers of both nodes and the store's state."),
    Endpoint("GET", "/openapi.json", "The OpenAPI 3.0 document of these endpoints."),
)


def fender_endpoints(settings: Settings, served: Container[str]) -> list[Endpoint]:
    """fender's endpoints at the paths ``settings`` put them, those it ``served`` (its table).

    A path the app serves itself (``/circuit-breaker``) is fender's no longer, so not listed.
    """
    health = settings.health_prefix
    candidates = [
        Endpoint("GET", health, "Aggregate health from a fresh run (pass/warn 200, fail 503)."),
        Endpoint("GET", f"{health}/live", "Liveness: 200 unless the process is broken."),
        Endpoint("GET", f"{health}/ready", "Readiness: 503 while starting, draining or failing."),
        Endpoint("GET", f"{health}/quick", "The cached health snapshot, no I/O."),
        Endpoint("GET", f"{health}/detailed", "Every check with its output.", protected=True),
        Endpoint("GET", f"{health}/version", "Version, release, commit and start time."),
        Endpoint("POST", f"{health}/drain", "Take every worker out of rotation.", protected=True),
        Endpoint("GET", "/status", "Lifecycle, uptime, checks, breakers, memory.", protected=True),
        Endpoint("GET", "/circuit-breaker", "Every circuit breaker.", protected=True),
        Endpoint(
            "GET",
            settings.metrics_path,
            "Prometheus metrics.",
            protected=settings.metrics_protected,
        ),
        Endpoint("GET", "/healthz", "Alias of the aggregate health."),
        Endpoint("GET", "/livez", "Alias of liveness."),
        Endpoint("GET", "/readyz", "Alias of readiness."),
    ]
    return [endpoint for endpoint in candidates if endpoint.path in served]
