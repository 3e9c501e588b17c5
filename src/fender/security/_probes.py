"""Well-known scanner paths (pure): does a request look like a probe for a known weakness?

Observed, never blocked: a match is a ``probe_path`` security event, and the request goes on
to the app (which answers 404 as for any unknown path). A short fixed list, not a regex WAF:
WordPress and phpMyAdmin logins, leaked ``.env``, ``.git`` and AWS credential files, CGI,
XML-RPC, and path traversal (``../``, ``..%2f``, ``%2e%2e``) anywhere in the raw target.

Example:
    >>> probe_of("/WP-Admin/setup.php", "")
    'wp-admin'
    >>> probe_of("/files/a", "/files/..%2f..%2fetc/passwd")
    'traversal'
    >>> probe_of("/items/1", "/items/1") is None
    True
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROBE_SEGMENTS", "probe_of"]

PROBE_SEGMENTS: Final = frozenset(
    {"wp-admin", "wp-login.php", "xmlrpc.php", ".git", "cgi-bin", ".aws", "phpmyadmin"}
)
"""Path segments (lower-case) that only scanners ask for; ``.env*`` and ``phpmyadmin*`` too."""

_PREFIXES: Final = (".env", "phpmyadmin")
# The rules a path without "." can match (derived: a rule added above is never missed below).
_DOTLESS: Final = tuple(sorted({rule for rule in (*PROBE_SEGMENTS, *_PREFIXES) if "." not in rule}))
# ../ and ..\ as sent, and their percent-encoded forms (%2e%2e, %2f, %5c), lower-cased.
_TRAVERSALS: Final = ("../", "..\\", "..%2f", "..%5c", "%2e%2e", "%2e.", ".%2e")


def probe_of(path: str, target: str) -> str | None:
    """The rule a request matches (a segment such as ``wp-admin``, or ``traversal``), or None.

    Args:
        path: the decoded request path.
        target: the raw request target as sent (percent-encoded path and query), where an
            encoded traversal is still visible.
    """
    low = path.lower()
    # Every request pays for this: most paths have no "." and no "%" (every traversal pattern
    # and every dotted rule needs one), and then only the dotless rules can match.
    if "." not in target and "%" not in target and "." not in low:
        for rule in _DOTLESS:
            if rule in low:
                break
        else:
            return None
    for segment in low.split("/"):
        if segment in PROBE_SEGMENTS:
            return segment
        if segment.startswith(_PREFIXES):
            return ".env" if segment.startswith(".env") else "phpmyadmin"
    raw = target.lower()
    if ("." in raw or "%2e" in raw) and any(pattern in raw for pattern in _TRAVERSALS):
        return "traversal"
    if "/../" in low or low.endswith("/.."):
        return "traversal"
    return None
