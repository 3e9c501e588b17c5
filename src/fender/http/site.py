"""What the middleware needs of fender's runtime for one app (the runtime has more)."""

from __future__ import annotations

from typing import Protocol

from fender.http.access import Observer
from fender.http.endpoints import Endpoints
from fender.runtime._lifecycle import Lifecycle
from fender.security import SecurityHeaders
from fender.settings import Settings

__all__ = ["Site"]


class Site(Protocol):
    """The parts of one app's runtime the request path reads, and its start and stop.

    The protocol shells (``fender.middleware``) are typed against this, not against
    :class:`fender.app.Runtime`, which sits above them and builds them.
    """

    settings: Settings
    observer: Observer
    endpoints: Endpoints
    lifecycle: Lifecycle
    headers: SecurityHeaders

    async def startup(self) -> None:
        """Run the startup hooks, then turn READY."""
        ...

    async def shutdown(self) -> None:
        """Turn STOPPED and run the shutdown hooks."""
        ...

    def ensure_started(self) -> bool:
        """For WSGI: start in this process once; False while the start has failed."""
        ...
