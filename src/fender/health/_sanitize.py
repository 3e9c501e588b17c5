"""Sanitizing what a check says before it leaves the process: secrets masked, JSON-safe values.

Output text that may reach an HTTP response passes :func:`sanitize` when a result is recorded
and again in the renderer, so a secret in an exception message never leaves the process; every
value a check returned passes :func:`sanitize_value`, so any JSON encoder writes it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from fender.settings._redact import SECRET_PAIR, TOKEN_SHAPES, URL_IN_TEXT, redact_url

__all__ = [
    "DETAILS_DEPTH",
    "KEY_LIMIT",
    "OUTPUT_LIMIT",
    "UNIT_LIMIT",
    "sanitize",
    "sanitize_details",
    "sanitize_value",
]

OUTPUT_LIMIT = 200
"""Characters kept of an ``output``."""
KEY_LIMIT = 64
"""Characters kept of a ``details`` key."""
UNIT_LIMIT = 64
"""Characters kept of an ``observed_unit``."""
DETAILS_DEPTH = 3
"""Levels of nested containers kept in ``details`` and ``observed_value``."""
# The integers orjson writes: int64 and uint64.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# Patterns run in order; each replaces the secret part with "***" and keeps enough context to
# debug (scheme, user name, key name). Over-masking a harmless value is accepted; leaking a
# secret is not.
_SANITIZERS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # A lone surrogate (from a bad decode) is not UTF-8: no JSON encoder or header can carry it.
    (re.compile(r"[\ud800-\udfff]+"), "\ufffd"),
    # Control characters would let a message forge log lines or break a header.
    (re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+"), " "),
    # scheme://user:password@host -> scheme://user:***@host; scheme://token@host -> ***@:
    # each URL-looking word goes through the one redaction of configured URLs, which takes
    # the userinfo up to the last '@' (a password may hold '/', '?', '#' or '@').
    (URL_IN_TEXT, lambda m: redact_url(m[0])),
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 ***"),
    (TOKEN_SHAPES, "***"),  # JWTs, AWS access key ids
    # "key=v", "key: v", '"key":"v"', "Authorization: ..." (the same pairs the logs mask).
    (SECRET_PAIR, r"\g<keep>***"),
    # Long mixed letter-and-digit runs look like generated tokens or keys.
    (
        re.compile(
            r"(?<![A-Za-z0-9_\-])(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Za-z])"
            r"[A-Za-z0-9_\-]{32,}(?![A-Za-z0-9_\-])"
        ),
        "***",
    ),
    (re.compile(r"\s{2,}"), " "),
)


def sanitize(text: object, limit: int = OUTPUT_LIMIT) -> str:
    """Return ``text`` on one line, secrets masked, capped at ``limit`` characters.

    Masks URL passwords (and single-part userinfo, often a token), ``Bearer``/``Basic``
    credentials, ``key=value`` pairs whose key names a secret, JWTs, AWS access key ids and
    long random-looking tokens. Idempotent, so it can run at every layer.

    >>> sanitize("connect redis://app:hunter2@cache:6379/0 failed")
    'connect redis://app:***@cache:6379/0 failed'
    >>> sanitize("GET /x?api_key=abc123&page=2")
    'GET /x?api_key=***&page=2'
    """
    return _sanitize(_text(text), limit)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # any __str__ may raise; the message must still render
        # Also an int past sys.get_int_max_str_digits(): str() refuses to convert it.
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__}>"


@functools.lru_cache(maxsize=2048)
def _sanitize(text: str, limit: int) -> str:
    # Cached: the same outputs are rendered on every /health/quick (about 15 regex passes
    # each); results are pure functions of the text.
    out = text
    for pattern, replacement in _SANITIZERS:
        out = pattern.sub(replacement, out)
    out = out.strip()
    if len(out) > limit:
        out = out[: max(limit - 1, 0)].rstrip() + "\u2026"
    return out


def sanitize_details(details: Mapping[str, object]) -> dict[str, Any]:
    """Return ``details`` as JSON-compatible data with every string sanitized.

    Keys become sanitized strings; values pass :func:`sanitize_value`.
    """
    return {sanitize(key, KEY_LIMIT): sanitize_value(value) for key, value in details.items()}


def sanitize_value(value: object, depth: int = DETAILS_DEPTH) -> Any:
    """Return ``value`` as data any JSON encoder (orjson included) accepts, strings sanitized.

    A check may return anything; rendering it must never fail. So:

    * ``None``, ``bool``, ``int`` within 64 bits and finite ``float`` stay numbers (subclasses
      such as ``IntEnum`` or NumPy's ``float64`` become the plain type);
    * an integer orjson cannot write (``>= 2**64`` or ``< -2**63``) becomes its decimal
      string (capped like any text; ``<int of N bits>`` past Python's digit limit);
    * NaN and the infinities become ``None`` (JSON has no such numbers; ``null`` keeps the
      field numeric for a dashboard);
    * mappings become dicts with sanitized string keys, and lists, tuples and sets become
      lists, down to ``depth`` levels; deeper containers become their (sanitized) text;
    * bytes are decoded as UTF-8 (invalid bytes replaced); anything else becomes its text,
      through :func:`sanitize`.

    >>> sanitize_value({"n": 2**70, 1: float("nan"), "s": {b"ok"}})
    {'n': '1180591620717411303424', '1': None, 's': ['ok']}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if _INT_MIN <= value <= _INT_MAX else sanitize(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if depth > 0 and isinstance(value, Mapping):
        return {
            sanitize(key, KEY_LIMIT): sanitize_value(item, depth - 1) for key, item in value.items()
        }
    if depth > 0 and isinstance(value, list | tuple | set | frozenset):
        return [sanitize_value(item, depth - 1) for item in value]
    return sanitize(value)
