"""Client-chosen text bounded in size, for metrics labels and rate-limit keys.

A client picks the raw path of an app without a router (and whatever a custom rate-limit key
function reads). Used as is, 60 kB paths make 60 kB label values and keys. :func:`bounded`
keeps short text as it is and shortens the rest to a prefix plus a digest of the whole, the
same in every process and run, so that shared keys (Redis) agree across instances.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["BOUNDED_MAX", "bounded", "clipped"]

BOUNDED_MAX: Final = 96
"""The longest text :func:`bounded` keeps as it is (in characters)."""

_PREFIX: Final = 64  # characters of a long text kept, before the digest
_SHORTENED_LENGTH: Final = _PREFIX + 1 + 16


def bounded(text: str) -> str:
    """``text`` if short, else its first 64 characters, ``~`` and 16 hex digits of a digest.

    Up to :data:`BOUNDED_MAX` characters the text is itself, unless it is shaped like a
    shortened one (then it is hashed too, so a client cannot name a long text's result).
    Distinct texts stay distinct (two long ones share a result only on a 64-bit BLAKE2b
    collision). Never raises: lone surrogates hash through ``surrogatepass``. Costs a length
    check for short text.

    Example:
        >>> bounded("/items/7")
        '/items/7'
        >>> len(bounded("/" + "a" * 60_000))
        81
    """
    length = len(text)
    if length <= BOUNDED_MAX and not (length == _SHORTENED_LENGTH and text[_PREFIX] == "~"):
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{text[:_PREFIX]}~{digest}"


def clipped(text: str, limit: int) -> str:
    """``text`` if at most ``limit`` characters, else its start and a marker with its length.

    For logged values a client chose (a User-Agent): readable, bounded, and plainly cut.

    Example:
        >>> clipped("curl/8.5.0", 512)
        'curl/8.5.0'
        >>> clipped("x" * 1000, 8)
        'xxxxxxxx...(1000 chars)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} chars)"
