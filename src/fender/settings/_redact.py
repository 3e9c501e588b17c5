"""What looks like a secret in text, decided in one place (a leaf: no fender imports).

:func:`redact_url` is how fender shows a configured URL. The health outputs
(:mod:`fender.health`) and the log redaction (:mod:`fender.observability`) mask text with the
same pieces: URLs through :func:`redact_urls`, and ``name=value`` pairs whose name says it
holds a secret through :func:`secret_pair_pattern`; :data:`SECRET_WORDS` is that list of
names, which the log redaction also applies to the keys of structured events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "HEADER_WORDS",
    "SECRET_HINTS",
    "SECRET_PAIR",
    "SECRET_WORDS",
    "TOKEN_SHAPES",
    "URL_IN_TEXT",
    "redact_url",
    "redact_urls",
    "secret_pair_pattern",
    "word_pattern",
]


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

URL_IN_TEXT: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S+")
"""A URL in running text: one word (a password in it may hold ``/ ? # @ :`` unencoded)."""


def redact_urls(text: str) -> str:
    """``text`` with every URL in it shown through :func:`redact_url`.

    >>> redact_urls("connect redis://app:hunter2@cache:6379/0 failed")
    'connect redis://app:***@cache:6379/0 failed'
    """
    return URL_IN_TEXT.sub(lambda m: redact_url(m[0]), text)


TOKEN_SHAPES: Final = re.compile(
    r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
)
"""Secrets known by their shape wherever they stand: a JWT (``eyJ...``), an AWS access key id.
Text holding none of ``eyJ``, ``AKIA``, ``ASIA`` has none."""

SECRET_WORDS: Final = (
    r"pass(?:word|wd|phrase)?|pwd?|secrets?|token|api[_\-]?key|access[_\-]?key"  # noqa: S105  (names)
    r"|private[_\-]?key|auth|credentials?|j?session(?:[_\-]?id)?|signature|sig|jwt|bearer"
    r"|[cx]srf(?:[_\-]?token)?"
)
"""Names (or parts of names, between ``_``/``-``) that say a value is a secret."""
HEADER_WORDS: Final = r"(?:proxy[_\-])?authorization|(?:set[_\-])?cookies?"
"""The headers that carry credentials; their value in text runs to the end of the line."""
SECRET_HINTS: Final = (
    "pass",
    "pw",
    "secret",
    "token",
    "key",
    "auth",
    "cred",
    "session",
    "sig",
    "cookie",
    "jwt",
    "bearer",
    "srf",
)
"""Each name of :data:`SECRET_WORDS` and :data:`HEADER_WORDS` holds one of these: lowercased
text holding none has no secret pair, which a few substring tests tell (the case-blind
pattern costs microseconds on any text)."""


def word_pattern(name: str) -> str:
    """A name given by a user as a pattern: case aside, ``-``, ``_`` and ``.`` alike.

    >>> bool(re.fullmatch(word_pattern("x-customer.id"), "X_Customer_ID", re.IGNORECASE))
    True
    """
    return r"[_\-.]?".join(re.escape(part) for part in re.split(r"[_\-.]", name) if part)


def secret_pair_pattern(extra_words: Iterable[str] = ()) -> re.Pattern[str]:
    """A pattern of ``name=value`` pairs whose name holds a secret word, in text.

    ``name=value``, ``name: value``, ``"name": "value"``, ``('name', 'value')``; the name may
    have a prefix and a suffix (``DB_PASSWORD``, ``secret_key``, ``accessToken``) but a
    secret word must stand as a part of it (``max_tokens`` is no token). The group ``keep``
    is what stays (the name, the separator, an opening quote); the rest of the match is the
    value: up to its closing quote, else to a space or delimiter, and for the credential
    headers (``Authorization: Bearer x``, ``Cookie: a=b; c=d``) to the end of the line.
    ``name:value`` with no space or quote is left alone (``auth:8080`` is a host and port).

    ``extra_words``: more names, as :func:`word_pattern` reads them.
    """
    words = "|".join([SECRET_WORDS, *(word_pattern(w) for w in extra_words)])
    return re.compile(
        r"(?i)(?<![A-Za-z0-9])(?P<keep>"
        # a prefix ending at a separator or a camelCase hump: DB_, X-, access(Token)
        r"(?:[A-Za-z0-9_\-]*(?:[_\-]|(?-i:(?<=[a-z])(?=[A-Z]))))?"
        rf"(?:(?P<header>{HEADER_WORDS})|{words})"
        r"(?:[_\-][A-Za-z0-9_\-]*)?"
        r"(?:[\"']?\s*=\s*|[\"']?:\s+|[\"']:\s*|[\"']\s*,\s*)"
        r"(?:b?(?P<quote>[\"']))?)"
        r"(?(quote)(?:\\.|(?!(?P=quote))[^\\\r\n])+|(?(header)[^\r\n]+|[^\s\"'&;,]+))"
    )


SECRET_PAIR: Final = secret_pair_pattern()
""":func:`secret_pair_pattern` of :data:`SECRET_WORDS` alone."""
