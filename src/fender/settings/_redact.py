"""URL redaction: the one way fender shows a configured URL (a leaf: no fender imports)."""

from __future__ import annotations

import re

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """Return ``url`` with its password (or a lone token before ``@``) replaced by ``***``.

    The one function fender shows a configured URL through. The userinfo runs from ``://`` to
    the *last* ``@``: a password may hold ``/ ? # : @`` unencoded, where urllib ends it early.
    Query options named like a secret (``?password=``, ``&sentinel_password=``) are masked
    too. What either reading calls secret is hidden; an ``@`` in a path or query may hide
    more than needed, which is accepted (showing a password is not).

    >>> redact_url("postgresql://app:hunter2@db:5432/app")
    'postgresql://app:***@db:5432/app'
    >>> redact_url("redis://:pa/ss#w@rd@cache:6379/0?password=x&db=1")
    'redis://:***@cache:6379/0?password=***&db=1'
    >>> redact_url("redis://TOKEN@cache:6379")
    'redis://***@cache:6379'
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    hidden: list[tuple[int, int]] = []
    userinfo, at, _ = url[start:].rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        secret_start = start + len(user) + 1 if colon else start
        hidden.append((secret_start, start + len(userinfo)))
    hidden.extend(match.span(2) for match in _SECRET_OPTION.finditer(url, start))
    merged: list[list[int]] = []
    for low, high in sorted(hidden):
        if merged and low <= merged[-1][1]:  # overlapping or touching: one mask
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    shown, end = [], 0
    for low, high in merged:
        shown += [url[end:low], "***"]
        end = high
    shown.append(url[end:])
    return "".join(shown)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A query option whose name says it holds a secret; its value runs to the next option.
_SECRET_OPTION = re.compile(
    r"(?i)([?&;][^=&;#?]*(?:pass|pwd|secret|token|key|auth|credential)[^=&;#?]*=)([^&;#]*)"
)
