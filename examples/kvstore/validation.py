"""What a key and a value may be, and the client errors that say why one is refused.

A key is 1 to :data:`MAX_KEY_LENGTH` characters of ``A-Z a-z 0-9 . _ : -`` (so it needs no
escaping in a path, and no ``,`` or ``=`` breaks a version token), but not ``.`` or ``..``
(which clients fold away as path segments). A value is non-empty UTF-8 text: up to
:data:`MAX_VALUE_CHARS` characters in a JSON body, :data:`MAX_PATH_VALUE_CHARS` in a path.
Too long is 413; anything else wrong is 400 (415 for a body that is not JSON at all).
"""

from __future__ import annotations

import json
import re
from typing import Final

__all__ = [
    "KEY_PATTERN",
    "MAX_BODY_BYTES",
    "MAX_KEY_LENGTH",
    "MAX_PATH_VALUE_CHARS",
    "MAX_VALUE_CHARS",
    "PATH_VALUE_PATTERN",
    "ClientError",
    "check_key",
    "value_from_body",
    "value_from_path",
]

MAX_KEY_LENGTH: Final = 128
MAX_VALUE_CHARS: Final = 65_536
"""Characters (code points, as JSON Schema's ``maxLength`` counts them) of a value in a body."""
MAX_PATH_VALUE_CHARS: Final = 1024
"""Characters of a value in ``POST /write/<key>/<value>`` (URLs stay well under 8 KB)."""
MAX_BODY_BYTES: Final = 1 << 20
"""The largest request body: the longest value fits however it is escaped (12 bytes a
character at worst, ``\\ud83d\\ude00``)."""

KEY_PATTERN: Final = r"^(?!\.\.?$)[A-Za-z0-9._:-]+$"
PATH_VALUE_PATTERN: Final = r"^(?!\.\.?$)[^/]+$"
_KEY_CHARS: Final = re.compile(r"[A-Za-z0-9._:-]")
_DOTS: Final = frozenset({".", ".."})


class ClientError(Exception):
    """A request the store refuses: ``status`` (400, 413, 415), a stable ``error`` code, why."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def check_key(key: str) -> str:
    """``key`` when it is a valid key; raise :class:`ClientError` naming what is wrong."""
    if not key:
        raise ClientError(400, "key_empty", "the key is empty: 1 to 128 characters")
    if len(key) > MAX_KEY_LENGTH:
        raise ClientError(
            413,
            "key_too_long",
            f"the key has {len(key)} characters; at most {MAX_KEY_LENGTH}",
        )
    for position, char in enumerate(key):
        if not _KEY_CHARS.fullmatch(char):
            raise ClientError(
                400,
                "key_invalid",
                f"the key has {char!r} at position {position}: only A-Z a-z 0-9 . _ : - "
                "are allowed",
            )
    if key in _DOTS:
        raise ClientError(400, "key_invalid", f"the key {key!r} is a path segment, not a key")
    return key


def _check_text(value: str, limit: int, where: str) -> str:
    if not value:
        raise ClientError(400, "value_empty", f"the value {where} is empty: at least 1 character")
    if len(value) > limit:
        raise ClientError(
            413,
            "value_too_long",
            f"the value {where} has {len(value)} characters; at most {limit}",
        )
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        # A lone surrogate: JSON's "\ud800" escapes one, and no node can store it.
        raise ClientError(
            400,
            "value_not_utf8",
            f"the value {where} is not UTF-8 text: {exc.reason} at position {exc.start}",
        ) from None
    return value


def value_from_path(value: str, raw_path: str) -> str:
    """The value of ``POST /write/<key>/<value>``.

    ``raw_path`` is the WSGI ``PATH_INFO`` (bytes as latin-1), where a percent-escape that is
    not UTF-8 is still seen: the decoded ``value`` has it replaced by U+FFFD.
    """
    try:
        raw_path.encode("latin-1").decode()
    except UnicodeError:
        raise ClientError(
            400, "value_not_utf8", "the path is not UTF-8 (a %-escape of a byte UTF-8 lacks)"
        ) from None
    if value in _DOTS:
        raise ClientError(
            400, "value_invalid", f"{value!r} is a path segment: send it as PUT /kv/<key>"
        )
    return _check_text(value, MAX_PATH_VALUE_CHARS, "in the path")


def value_from_body(content_type: str | None, body: bytes) -> str:
    """The value of a ``{"value": "..."}`` JSON body; :class:`ClientError` for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ClientError(
            415,
            "unsupported_media_type",
            f"the body must be application/json, not {media or 'untyped'}",
        )
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise ClientError(400, "bad_json", f"the body is not JSON: {reason}") from None
    if not isinstance(document, dict):
        raise ClientError(400, "bad_body", 'the body must be a JSON object: {"value": "..."}')
    unknown = sorted(set(document) - {"value"})
    if unknown:
        names = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise ClientError(400, "bad_body", f"unknown field(s) {names}: only 'value' is read")
    if "value" not in document:
        raise ClientError(400, "value_missing", 'the body has no "value"')
    value = document["value"]
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise ClientError(400, "value_not_text", f'"value" must be a string, not {kind}')
    return _check_text(value, MAX_VALUE_CHARS, "in the body")
