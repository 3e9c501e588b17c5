"""Strict-Transport-Security options (pure), validated: a typo or a risky preload raises.

Example:
    >>> HSTS(max_age=63072000, include_subdomains=True, preload=True).header_value()
    'max-age=63072000; includeSubDomains; preload'
    >>> HSTS.parse("max-age=31536000; includeSubdomain")
    Traceback (most recent call last):
    ...
    fender.errors.ConfigurationError: hsts='includeSubdomain' is invalid: expected max-age=N, includeSubDomains or preload; did you mean 'includeSubDomains'?
"""  # noqa: E501  (the doctest's lines are what Python prints)

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Final

from fender.errors import ConfigurationError

__all__ = ["HSTS", "PRELOAD_MIN_AGE"]

PRELOAD_MIN_AGE: Final = 31536000
"""The shortest max-age (one year) the preload list accepts."""

_OPTIONS: Final = ("max_age", "include_subdomains", "preload")
_DIRECTIVES: Final = ("max-age", "includeSubDomains", "preload")


@dataclass(frozen=True, slots=True, init=False)
class HSTS:
    """Strict-Transport-Security, sent on https responses only.

    Attributes:
        max_age: seconds browsers remember to use https only (default one year); 0 sends no
            header.
        include_subdomains: every subdomain too (default on).
        preload: ask to be in browsers' preload list; refused unless ``max_age`` is at least a
            year and ``include_subdomains`` is on (the list's own rules: a preloaded domain
            cannot easily leave it).
    """

    max_age: int
    include_subdomains: bool
    preload: bool

    def __init__(
        self,
        *,
        max_age: int = PRELOAD_MIN_AGE,
        include_subdomains: bool = True,
        preload: bool = False,
        field: str = "hsts",
        **unknown: Any,
    ) -> None:
        """Validate the options; an unknown keyword (a typo) raises, naming the closest.

        Raises:
            ConfigurationError: an unknown option, a max_age that is not an integer >= 0, a
                flag that is not a bool, or preload without its conditions.
        """
        for name, value in unknown.items():
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(f"{field}.{name}", value, f"one of {_OPTIONS}{hint}")
        if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0:
            raise ConfigurationError(f"{field}.max_age", max_age, "an integer of seconds >= 0")
        for name, flag in (("include_subdomains", include_subdomains), ("preload", preload)):
            if not isinstance(flag, bool):
                raise ConfigurationError(f"{field}.{name}", flag, "True or False")
        if preload and (max_age < PRELOAD_MIN_AGE or not include_subdomains):
            raise ConfigurationError(
                f"{field}.preload",
                preload,
                f"preload only with max_age >= {PRELOAD_MIN_AGE} and include_subdomains "
                f"(got max_age={max_age}, include_subdomains={include_subdomains})",
            )
        object.__setattr__(self, "max_age", max_age)
        object.__setattr__(self, "include_subdomains", include_subdomains)
        object.__setattr__(self, "preload", preload)

    @classmethod
    def parse(cls, header: str, *, field: str = "hsts") -> HSTS:
        """Options from a header value, ``"max-age=31536000; includeSubDomains"``.

        Directive names are matched as browsers do (ignoring case); anything else, a repeated
        directive or a missing max-age raises.
        """
        options: dict[str, Any] = {}
        for part in header.split(";"):
            token = part.strip()
            if not token:
                continue
            name, eq, value = token.partition("=")
            key = name.strip().lower()
            if key == "max-age" and eq and value.strip().isdigit():
                option, parsed = "max_age", int(value.strip())
            elif key == "includesubdomains" and not eq:
                option, parsed = "include_subdomains", True
            elif key == "preload" and not eq:
                option, parsed = "preload", True
            else:
                close = difflib.get_close_matches(name.strip(), _DIRECTIVES, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    field, token, f"max-age=N, includeSubDomains or preload{hint}"
                )
            if option in options:
                raise ConfigurationError(field, token, "each directive once")
            options[option] = parsed
        if "max_age" not in options:
            raise ConfigurationError(field, header, "a max-age=N directive")
        options.setdefault("include_subdomains", False)
        return cls(field=field, **options)

    def header_value(self) -> str | None:
        """The header's value; None when ``max_age`` is 0 (no header)."""
        if not self.max_age:
            return None
        parts = [f"max-age={self.max_age}"]
        if self.include_subdomains:
            parts.append("includeSubDomains")
        if self.preload:
            parts.append("preload")
        return "; ".join(parts)
