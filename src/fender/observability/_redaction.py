"""Secrets out of every log line: a structlog processor over the whole event, built once.

:class:`Redactor` masks, at any depth of an event (bounded by ``max_depth``):

* the value of a key named like a secret (``password``, ``secret_key``, ``accessToken``,
  ``X-Api-Key``, ``Authorization``, ``Cookie``, ``session``...: a part of the name between
  ``_``, ``-``, ``.`` or a camelCase hump is one of :data:`~fender.settings._redact.SECRET_WORDS`
  or FENDER_LOG_REDACT_KEYS), also as the second item of a ``(name, value)`` pair (ASGI and
  WSGI header lists);
* in text (the message, a traceback, any string or object logged): URL passwords and secret
  query options (``***``, as fender shows any URL), ``name=value`` pairs naming a secret,
  ``Authorization: ...`` and ``Cookie: ...`` to the end of the line, ``Bearer`` tokens,
  JWTs and AWS access key ids (:data:`~fender.settings._redact.TOKEN_SHAPES`);
* opt-in: e-mail addresses, and IP addresses anonymised (IPv4 ``/24``, IPv6 ``/48``).

What it masks becomes :data:`REDACTED`. Over-masking a harmless value is accepted; leaking a
secret is not. The patterns are compiled once per configuration; text is searched only when it
holds a character a secret needs (``:`` ``=`` ``@``, or ``uthoriz``/``ookie``/``earer``), so an
event without any costs a few substring tests per string. The access line's fast path calls
:meth:`Redactor.cached` for its client-chosen fields: a bounded map of the texts seen last.
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, WrappedLogger

from fender.settings import Settings
from fender.settings._checks import key_names
from fender.settings._redact import (
    HEADER_WORDS,
    SECRET_HINTS,
    SECRET_WORDS,
    TOKEN_SHAPES,
    redact_urls,
    secret_pair_pattern,
)
from fender.settings._redact import word_pattern as _word_pattern

__all__ = ["MAX_DEPTH", "REDACTED", "Redactor"]

REDACTED: Final = "[REDACTED]"
"""What a masked value becomes."""
MAX_DEPTH: Final = 8
"""Nested containers walked; deeper ones are rendered as text and masked as text."""

# Fields every event has, set by fender: never a secret, and skipped (a timestamp has ':').
# exc_info: the exception itself, made text (and masked) by the renderer's formatter; as text
# here it would be no exception, and a console line would lose its traceback.
_OWN_FIELDS: Final = frozenset(
    {"timestamp", "level", "logger", "request_id", "trace_id", "span_id", "exc_info"}
)
_CACHE_SIZE: Final = 512  # texts remembered by cached(); the map is emptied when full
_NOT_SECRET: Final = (bool, type(None))  # a flag or an absence says nothing of a secret
_PLAIN: Final = (bool, type(None), int, float)  # numbers and flags are logged as they are
_CAMEL_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_BEARER: Final = re.compile(r"(?i)(?<![A-Za-z0-9])(bearer\s+)[A-Za-z0-9._~+/\-]+=*")
_PAIR_MASK: Final = r"\g<keep>" + REDACTED  # the name and separator stay
_BEARER_MASK: Final = r"\1" + REDACTED
_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4: Final = re.compile(rf"(?<![\d.])((?:{_OCTET}\.){{3}}){_OCTET}(?!\d|\.\d)")
# Candidates only: each is parsed (ipaddress) before it is changed; "12:30:00" is no address.
_IPV6: Final = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def _anonymize_ipv6(match: re.Match[str]) -> str:
    try:
        address = ipaddress.IPv6Address(match[0])
    except ValueError:
        return match[0]
    return str(ipaddress.IPv6Network((address, 48), strict=False).network_address)


def _anonymize_ips(text: str) -> str:
    if "." in text:
        text = _IPV4.sub(r"\g<1>0", text)
    if ":" in text:
        text = _IPV6.sub(_anonymize_ipv6, text)
    return text


class Redactor:
    """Masks secrets in structlog events, text and values (see the module).

    Example:
        >>> redactor = Redactor()
        >>> redactor.text("retry redis://app:hunter2@cache:6379 with password=hunter2")
        'retry redis://app:***@cache:6379 with password=[REDACTED]'
        >>> redactor.value({"headers": {"Authorization": "Bearer abc"}, "n": 1})
        {'headers': {'Authorization': '[REDACTED]'}, 'n': 1}
    """

    __slots__ = ("_cache", "_emails", "_hints", "_ips", "_keys", "_known", "_pair", "max_depth")

    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        emails: bool = False,
        anonymize_ip: bool = False,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        """Compile the patterns: ``keys`` are names masked beside the built-in ones."""
        extra = tuple(keys)
        words = "|".join([SECRET_WORDS, HEADER_WORDS, *(_word_pattern(k) for k in extra)])
        # Keys are matched once normalised: "_" between the parts, whatever separated them.
        self._keys = re.compile(rf"(?i)(?:^|_)(?:{words})(?:_|$)")
        self._pair = secret_pair_pattern(extra)
        # A word of each extra name, lowercased, joins the hints of the built-in ones.
        firsts = (re.split(r"[_\-.]", k.lower().strip("_-."))[0] for k in extra)
        self._hints = tuple(dict.fromkeys([*SECRET_HINTS, *firsts]))
        self._emails = emails
        self._ips = anonymize_ip
        self._known: dict[object, bool] = {}  # key -> secret?; keys are few, values many
        self._cache: dict[str, str] = {}
        self.max_depth = max_depth

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor | None:
        """The redactor FENDER_LOG_REDACT* ask for; None when redaction is off."""
        if not settings.log_redact:
            return None
        return cls(
            keys=key_names(settings.log_redact_keys),
            emails=settings.log_redact_emails,
            anonymize_ip=settings.log_anonymize_ip,
        )

    def __call__(self, _logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
        """Structlog processor: mask the event in place (fender's own fields aside)."""
        return self.fields(event, _OWN_FIELDS)

    def fields(self, event: EventDict, skip: frozenset[str] = frozenset()) -> EventDict:
        """Mask the values of ``event`` in place, but those of the keys in ``skip``."""
        changed = None
        known, text = self._known, self.text
        for key, value in event.items():
            if key in skip:
                continue
            # The common cases inline (a known key, a plain value): this runs on every event.
            secret = known.get(key)
            if secret is None:
                secret = self.is_secret_key(key)
            if secret:
                masked = value if isinstance(value, _NOT_SECRET) else REDACTED
            elif type(value) is str:
                masked = text(value)
            elif isinstance(value, _PLAIN):
                continue
            else:
                masked = self._value(value, self.max_depth)
            if masked is not value:
                if changed is None:
                    changed = {}
                changed[key] = masked
        if changed:
            event.update(changed)
        return event

    def is_secret_key(self, key: object) -> bool:
        """True when the values of ``key`` are masked (remembered: keys repeat)."""
        known = self._known.get(key)
        if known is None:
            if isinstance(key, bytes):
                name = key.decode("latin-1")
            elif isinstance(key, str):
                name = key
            else:
                return False
            normal = _CAMEL_HUMP.sub("_", name).replace("-", "_").replace(".", "_")
            known = self._keys.search(normal) is not None
            if len(self._known) >= _CACHE_SIZE:  # app data may bring keys without end
                self._known.clear()
            self._known[key] = known
        return known

    def text(self, text: str) -> str:
        """``text`` with the secrets in it masked; ``text`` itself when there are none."""
        out = text
        if "://" in out and ("@" in out or "=" in out):
            out = redact_urls(out)
        if "=" in out or ":" in out or "," in out:  # a pair has a separator
            lower = out.lower()
            for hint in self._hints:
                if hint in lower:
                    out = self._pair.sub(_PAIR_MASK, out)
                    break
        if "earer" in out or "EARER" in out:
            out = _BEARER.sub(_BEARER_MASK, out)
        if "eyJ" in out or "AKIA" in out or "ASIA" in out:
            out = TOKEN_SHAPES.sub(REDACTED, out)
        if self._emails and "@" in out:
            out = _EMAIL.sub(REDACTED, out)
        if self._ips:
            out = _anonymize_ips(out)
        return text if out == text else out

    def cached(self, text: str) -> str:
        """:meth:`text`, remembered for the texts seen last (the access line's fields)."""
        done = self._cache.get(text)
        if done is None:
            done = self.text(text)
            if len(self._cache) >= _CACHE_SIZE:  # clients choose these: bounded
                self._cache.clear()
            self._cache[text] = done
        return done

    def value(self, value: Any) -> Any:
        """``value`` with its secrets masked: a copy where anything changed, else itself."""
        return self._value(value, self.max_depth)

    def traceback(self, sio: TextIO, exc_info: ExcInfo) -> None:
        """A console exception formatter: Python's own traceback, masked as text.

        Not rich's: it shows local variables and breaks lines, where a secret would escape.
        """
        plain = io.StringIO()
        structlog.dev.plain_traceback(plain, exc_info)
        sio.write(self.text(plain.getvalue()))

    def _masked(self, key: object, value: Any, depth: int) -> Any:
        if self.is_secret_key(key):
            return value if isinstance(value, _NOT_SECRET) else REDACTED
        return self._value(value, depth)

    def _value(self, value: Any, depth: int) -> Any:  # noqa: PLR0911  (one return per kind)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, _PLAIN):
            return value
        if depth <= 0:
            return self._as_text(value)
        # dict and list before the Mapping ABC, whose isinstance is slow
        if isinstance(value, list | tuple | set | frozenset):
            return self._sequence(value, depth - 1)
        if isinstance(value, dict | Mapping):
            return self._mapping(value, depth - 1)
        if isinstance(value, bytes | bytearray):
            decoded = bytes(value).decode("utf-8", "replace")
            masked = self.text(decoded)
            return value if masked is decoded else masked
        return self._as_text(value)

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        copy = None  # made at the first change only
        for key, item in value.items():
            masked = self._masked(key, item, depth)
            if masked is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = masked
        return value if copy is None else copy

    def _sequence(self, value: Any, depth: int) -> Any:
        if (
            len(value) == 2  # noqa: PLR2004  (a (name, value) pair: a header)
            and isinstance(value, list | tuple)
            and isinstance(value[0], str | bytes)
            and self.is_secret_key(value[0])
        ):
            second = value[1]
            masked_pair = [value[0], second if isinstance(second, _NOT_SECRET) else REDACTED]
            return masked_pair if isinstance(value, list) else tuple(masked_pair)
        copy = None  # made at the first change only
        for index, item in enumerate(value):
            masked = self._value(item, depth)
            if masked is not item:
                if copy is None:
                    copy = list(value)
                copy[index] = masked
        if copy is None:
            return value
        return tuple(copy) if isinstance(value, tuple) else copy

    def _as_text(self, value: object) -> Any:
        """An object the renderer writes as its ``str()``, deeper than ``max_depth``."""
        try:
            shown = str(value)
        except Exception:  # any __str__ may raise; the renderer will say so
            return value
        masked = self.text(shown)
        return value if masked is shown else masked
