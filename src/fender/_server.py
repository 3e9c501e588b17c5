"""Which server this process runs under (a leaf: read from the environment the server sets)."""

from __future__ import annotations

import os

__all__ = ["under_gunicorn"]


def under_gunicorn() -> bool:
    """True in a gunicorn worker (gunicorn exports ``SERVER_SOFTWARE=gunicorn/<version>``)."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/")
