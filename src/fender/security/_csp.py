"""The Content-Security-Policy builder (pure): a policy that cannot be malformed.

A policy is built once, at start-up, from a dict, a header string (``FENDER_CSP``) or step by
step; every value is checked there, and a bad one raises
:class:`~fender.errors.ConfigurationError` naming the directive and the value. What a browser
would silently read otherwise is refused: a ``;`` or ``,`` inside a value (a second directive,
a second policy), CR or LF (a second header), an unquoted keyword (``self`` is a *host* named
"self"), an unknown or repeated directive, a value of the wrong type (the ``None`` that makes
flask-talisman fail every request), a policy without ``default-src``.

A directive's value is one of:

* a string: one source, or several separated by spaces (``"'self' https:"``);
* an iterable of strings, each one source (or several, separated by spaces);
* ``True``: a directive without a value (``upgrade-insecure-requests``, ``sandbox``);
* ``None``: no such directive (to drop one from a policy being changed).

Example:
    >>> policy = CSP.from_dict({
    ...     "default-src": CSP.SELF,
    ...     "script-src": [CSP.SELF, CSP.NONCE],
    ...     "img-src": "'self' data:",
    ...     "upgrade-insecure-requests": True,
    ... })
    >>> policy.header_value()
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; img-src 'self' data:; upgrade-insecure-requests"
    >>> CSP().directive("default-src", CSP.NONE).directive("frame-ancestors", CSP.NONE).header_value()
    "default-src 'none'; frame-ancestors 'none'"
    >>> CSP.from_dict({"default-src": "self"})
    Traceback (most recent call last):
    ...
    fender.errors.ConfigurationError: csp.default-src='self' is invalid: expected a CSP source; did you mean "'self'" (keywords are quoted)?
"""  # noqa: E501  (the doctest's lines are what Python prints)

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Final

from fender.errors import ConfigurationError

__all__ = ["CSP", "DIRECTIVES", "NONCE_PLACEHOLDER", "parse_csp"]

NONCE_PLACEHOLDER: Final = "{nonce}"
"""What stands for the request's nonce inside :attr:`CSP.NONCE` and the header template."""

# What each directive takes. "fetch": a source list (keywords, nonces, hashes, hosts, schemes);
# "ancestors": hosts, schemes, 'self' and 'none' only (navigation and framing directives, where
# nonces, hashes and 'unsafe-*' mean nothing); the rest have a grammar of their own.
_FETCH: Final = "fetch"
_ANCESTORS: Final = "ancestors"
_FLAG: Final = "flag"
_SANDBOX: Final = "sandbox"
_URIS: Final = "uris"
_GROUP_KIND: Final = "token"
_TRUSTED_TYPES: Final = "trusted-types"
_REQUIRE_TT: Final = "require-trusted-types-for"
_WEBRTC: Final = "webrtc"

DIRECTIVES: Final[Mapping[str, str]] = {
    # CSP Level 3 fetch directives
    "default-src": _FETCH,
    "child-src": _FETCH,
    "connect-src": _FETCH,
    "font-src": _FETCH,
    "frame-src": _FETCH,
    "img-src": _FETCH,
    "manifest-src": _FETCH,
    "media-src": _FETCH,
    "object-src": _FETCH,
    "script-src": _FETCH,
    "script-src-elem": _FETCH,
    "script-src-attr": _FETCH,
    "style-src": _FETCH,
    "style-src-elem": _FETCH,
    "style-src-attr": _FETCH,
    "worker-src": _FETCH,
    # document and navigation directives
    "base-uri": _ANCESTORS,
    "form-action": _ANCESTORS,
    "frame-ancestors": _ANCESTORS,
    "sandbox": _SANDBOX,
    # reporting
    "report-uri": _URIS,
    "report-to": _GROUP_KIND,
    # other documents' features
    "upgrade-insecure-requests": _FLAG,
    "block-all-mixed-content": _FLAG,
    "require-trusted-types-for": _REQUIRE_TT,
    "trusted-types": _TRUSTED_TYPES,
    "webrtc": _WEBRTC,
}
"""Every directive the builder knows, and the kind of value it takes."""

_KEYWORDS: Final = frozenset(
    {
        "'self'",
        "'none'",
        "'unsafe-inline'",
        "'unsafe-eval'",
        "'strict-dynamic'",
        "'unsafe-hashes'",
        "'report-sample'",
        "'wasm-unsafe-eval'",
        "'inline-speculation-rules'",
    }
)
_ANCESTOR_KEYWORDS: Final = frozenset({"'self'", "'none'"})
_SANDBOX_TOKENS: Final = frozenset(
    {
        "allow-downloads",
        "allow-forms",
        "allow-modals",
        "allow-orientation-lock",
        "allow-pointer-lock",
        "allow-popups",
        "allow-popups-to-escape-sandbox",
        "allow-presentation",
        "allow-same-origin",
        "allow-scripts",
        "allow-storage-access-by-user-activation",
        "allow-top-navigation",
        "allow-top-navigation-by-user-activation",
        "allow-top-navigation-to-custom-protocols",
    }
)
_BASE64: Final = r"[A-Za-z0-9+/_-]+={0,2}"
_NONCE_SOURCE: Final = re.compile(rf"'nonce-{_BASE64}'")
_HASH_SOURCE: Final = re.compile(rf"'sha(?:256|384|512)-{_BASE64}'")
_SCHEME: Final = r"[A-Za-z][A-Za-z0-9+.-]*"
_SCHEME_SOURCE: Final = re.compile(rf"{_SCHEME}:")
# host-source: [scheme "://"] host [":" port] [path]; a path without ';' ',' or quotes.
_HOST_SOURCE: Final = re.compile(
    rf"(?:{_SCHEME}://)?"
    r"(?:\*|(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
    r"(?::(?:[0-9]+|\*))?"
    r"(?:/(?:[A-Za-z0-9._~!$&()*+=:@/-]|%[0-9A-Fa-f]{2})*)?"
)
_URI: Final = re.compile(r"[A-Za-z0-9._~!$&()*+=:@/?#\[\]%-]+")
# A structured-field key (Reporting-Endpoints is a dictionary): lower-case.
_GROUP: Final = re.compile(r"[a-z][a-z0-9_-]*")
_POLICY_NAME: Final = re.compile(r"[A-Za-z0-9#=_/@.%-]+")
# Bare words a browser would read as host names: each is almost surely a keyword or a nonce or
# hash without its quotes.
_BARE: Final = re.compile(
    r"(?:self|none|unsafe-inline|unsafe-eval|strict-dynamic|unsafe-hashes|report-sample"
    r"|wasm-unsafe-eval|inline-speculation-rules|script|allow|block|allow-duplicates"
    r"|nonce-.*|sha(?:256|384|512)-.*)",
    re.IGNORECASE,
)
_SEPARATORS: Final = {
    ";": "a ';' ends the directive (give each directive its own entry)",
    ",": "a ',' starts a second policy (give each source its own entry, no commas)",
    "\r": "CR would end the header",
    "\n": "LF would end the header",
}
_VALUELESS: Final = (_FLAG, _SANDBOX)


class CSP:
    """A validated Content-Security-Policy: immutable; each change returns a new policy.

    Build it with :meth:`from_dict`, :meth:`parse` (a header string) or step by step
    (:meth:`directive`, :meth:`report_to`); change one with :meth:`override`. Validation runs as
    each directive is added; :meth:`header_value` adds the last check (``default-src`` present,
    unless ``allow_missing_default_src``), so a policy is judged whole when fender compiles it
    at start-up.

    Sources are written as the header has them: keywords quoted (:attr:`SELF` is ``"'self'"``),
    hosts and schemes bare (``https:``, ``cdn.example.com``). :attr:`NONCE` stands for the
    request's nonce: fender makes a fresh one per request (only for policies that use it) and
    gives it to the app (``request.state.csp_nonce``, ``g.csp_nonce``, ``csp_nonce()`` in Jinja).

    Example:
        >>> policy = (
        ...     CSP()
        ...     .directive("default-src", CSP.SELF)
        ...     .directive("script-src", CSP.SELF, CSP.NONCE)
        ...     .report_to("csp", "https://example.com/csp-reports")
        ... )
        >>> policy.header_value()
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; report-to csp"
        >>> policy.reporting_endpoints
        'csp="https://example.com/csp-reports"'
    """

    SELF: Final = "'self'"
    NONE: Final = "'none'"
    UNSAFE_INLINE: Final = "'unsafe-inline'"
    UNSAFE_EVAL: Final = "'unsafe-eval'"
    STRICT_DYNAMIC: Final = "'strict-dynamic'"
    UNSAFE_HASHES: Final = "'unsafe-hashes'"
    REPORT_SAMPLE: Final = "'report-sample'"
    WASM_UNSAFE_EVAL: Final = "'wasm-unsafe-eval'"
    NONCE: Final = "'nonce-" + NONCE_PLACEHOLDER + "'"
    """The request's nonce (a placeholder, replaced per request)."""

    __slots__ = ("_directives", "_endpoints", "_field", "allow_missing_default_src")

    def __init__(self, *, allow_missing_default_src: bool = False, field: str = "csp") -> None:
        """An empty policy; ``field`` prefixes the directive in error messages.

        ``allow_missing_default_src``: accept a policy without ``default-src`` (each fetch not
        named by a directive is then unrestricted); off, such a policy is refused.
        """
        self._directives: dict[str, tuple[str, ...]] = {}
        self._endpoints: tuple[tuple[str, str], ...] = ()
        self._field = field
        self.allow_missing_default_src = allow_missing_default_src

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        directives: Mapping[str, object],
        *,
        allow_missing_default_src: bool = False,
        field: str = "csp",
    ) -> CSP:
        """A policy from ``{directive: value}``; names may use ``_`` for ``-``.

        Raises:
            ConfigurationError: a value, a directive name, or the policy as a whole is invalid
                (see the module); it names the directive and the value.
        """
        if not isinstance(directives, Mapping):
            raise ConfigurationError(field, directives, "a mapping of directive names to values")
        policy = cls(allow_missing_default_src=allow_missing_default_src, field=field)
        for name, value in directives.items():
            policy = policy.directive(name, value)
        policy.header_value()  # judged whole now: default-src
        return policy

    @classmethod
    def parse(
        cls, header: str, *, allow_missing_default_src: bool = False, field: str = "csp"
    ) -> CSP:
        """A policy from its header form, ``"default-src 'self'; img-src *"``, validated.

        The same checks as :meth:`from_dict`: a directive named twice is refused (a browser
        would silently keep only the first).
        """
        if not isinstance(header, str):
            raise ConfigurationError(field, header, "a Content-Security-Policy string")
        for char in ",\r\n":
            if char in header:
                raise ConfigurationError(field, header, _SEPARATORS[char])
        policy = cls(allow_missing_default_src=allow_missing_default_src, field=field)
        for part in header.split(";"):
            tokens = part.split()
            if not tokens:
                continue
            name, *sources = tokens
            policy = policy.directive(name, sources)
        policy.header_value()
        return policy

    def directive(self, name: str, *values: object) -> CSP:
        """This policy plus directive ``name`` with ``values`` (sources, or ``True``).

        ``policy.directive("script-src", CSP.SELF, CSP.NONCE)``, or one value of any form the
        module allows (``policy.directive("img-src", ["'self'", "data:"])``). ``None`` adds
        nothing.

        Raises:
            ConfigurationError: ``name`` is unknown or already in the policy, or a value is
                invalid.
        """
        key = self._name(name)
        if key in self._directives:
            raise ConfigurationError(
                f"{self._field}.{key}", name, "each directive once (it is already in the policy)"
            )
        value: object = values[0] if len(values) == 1 else list(values)
        if not values:
            value = True
        sources = self._sources(key, value)
        if sources is None:
            return self
        return self._copy({**self._directives, key: sources})

    def override(self, directives: Mapping[str, object]) -> CSP:
        """This policy with each directive of ``directives`` replaced (``None``: removed).

        For a change to a whole policy, such as fender's defaults:
        ``CSP.web().override({"script-src": [CSP.SELF, CSP.NONCE]})``.
        """
        merged = dict(self._directives)
        seen: set[str] = set()
        for name, value in directives.items():
            key = self._name(name)
            if key in seen:
                raise ConfigurationError(
                    f"{self._field}.{key}", name, "each directive once (named twice)"
                )
            seen.add(key)
            sources = self._sources(key, value)
            if sources is None:
                merged.pop(key, None)
            else:
                merged[key] = sources
        result = self._copy(merged)
        result.header_value()
        return result

    def without(self, *names: str) -> CSP:
        """This policy without the directives ``names`` (present or not)."""
        drop = {self._name(name) for name in names}
        return self._copy({k: v for k, v in self._directives.items() if k not in drop})

    def report_to(self, group: str, url: str) -> CSP:
        """Report violations to ``url`` under the Reporting API group ``group``.

        Adds the ``report-to group`` directive and the endpoint that fender sends in the
        ``Reporting-Endpoints`` header (:attr:`reporting_endpoints`). Keep a ``report-uri``
        too for browsers without the Reporting API (Firefox).
        """
        field = f"{self._field}.report-to"
        if not isinstance(group, str) or not _GROUP.fullmatch(group):
            raise ConfigurationError(
                field, group, "a group name: a-z first, then a-z, 0-9, '-', '_'"
            )
        if not isinstance(url, str) or not _URI.fullmatch(url):
            raise ConfigurationError(field, url, "a URL without spaces, quotes, ';' or ','")
        policy = self.without("report-to").directive("report-to", group)
        policy._endpoints = ((group, url),)  # noqa: SLF001  (the same class)
        return policy

    # --- reading ----------------------------------------------------------------------------

    @property
    def directives(self) -> dict[str, tuple[str, ...]]:
        """The directives in order, each with its sources (``()`` for a valueless one)."""
        return dict(self._directives)

    @property
    def uses_nonce(self) -> bool:
        """True when a directive has :attr:`NONCE`: each request then gets a fresh nonce."""
        return any(CSP.NONCE in sources for sources in self._directives.values())

    @property
    def reporting_endpoints(self) -> str | None:
        """The ``Reporting-Endpoints`` header value of :meth:`report_to`'s groups, or None."""
        if not self._endpoints:
            return None
        return ", ".join(f'{group}="{url}"' for group, url in self._endpoints)

    def header_value(self, *, exclude: Iterable[str] = ()) -> str:
        """The header's value; :attr:`NONCE` appears as ``'nonce-{nonce}'``.

        ``exclude``: directive names left out (fender leaves ``upgrade-insecure-requests`` out
        on http).

        Raises:
            ConfigurationError: the policy has no ``default-src`` (and does not allow that),
                or no directive at all.
        """
        if not self._directives:
            raise ConfigurationError(self._field, "", "a policy with at least default-src")
        if "default-src" not in self._directives and not self.allow_missing_default_src:
            raise ConfigurationError(
                f"{self._field}.default-src",
                None,
                "a default-src directive (the fallback of every fetch directive not named); "
                "pass allow_missing_default_src=True to go without",
            )
        skip = frozenset(exclude)
        return "; ".join(
            " ".join((name, *sources)) for name, sources in self._directives.items()
            if name not in skip
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CSP):
            return NotImplemented
        return (self._directives, self._endpoints) == (other._directives, other._endpoints)

    def __hash__(self) -> int:
        return hash((tuple(self._directives.items()), self._endpoints))

    def __repr__(self) -> str:
        body = "; ".join(" ".join((k, *v)) for k, v in self._directives.items())
        return f"CSP({body!r})"

    # --- the defaults -----------------------------------------------------------------------

    @classmethod
    def web(cls) -> CSP:
        """Helmet 8's default policy, for pages (``upgrade-insecure-requests`` on https only)."""
        return cls.from_dict(
            {
                "default-src": cls.SELF,
                "base-uri": cls.SELF,
                "font-src": "'self' https: data:",
                "form-action": cls.SELF,
                "frame-ancestors": cls.SELF,
                "img-src": "'self' data:",
                "object-src": cls.NONE,
                "script-src": cls.SELF,
                "script-src-attr": cls.NONE,
                "style-src": "'self' https: 'unsafe-inline'",
                "upgrade-insecure-requests": True,
            }
        )

    @classmethod
    def api(cls) -> CSP:
        """The policy of a JSON API: nothing may load, nothing may frame it."""
        return cls.from_dict({"default-src": cls.NONE, "frame-ancestors": cls.NONE})

    # --- validation -------------------------------------------------------------------------

    def _copy(self, directives: dict[str, tuple[str, ...]]) -> CSP:
        policy = CSP(allow_missing_default_src=self.allow_missing_default_src, field=self._field)
        policy._directives = directives
        policy._endpoints = self._endpoints
        return policy

    def _name(self, name: object) -> str:
        if not isinstance(name, str):
            raise ConfigurationError(self._field, name, "a directive name (a string)")
        key = name.strip().lower().replace("_", "-")
        if key not in DIRECTIVES:
            close = difflib.get_close_matches(key, DIRECTIVES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(f"{self._field}.{name}", name, f"a CSP directive name{hint}")
        return key

    def _sources(  # noqa: C901, PLR0912  (each form of a value, in the module's order)
        self, name: str, value: object
    ) -> tuple[str, ...] | None:
        """The directive's sources (``()``: valueless), None to drop it; or raise."""
        field = f"{self._field}.{name}"
        kind = DIRECTIVES[name]
        if value is None:
            return None
        if value is True:
            if kind in _VALUELESS:
                return ()
            raise ConfigurationError(
                field, value, f"{_EXPECTED[kind]}; True is for valueless directives"
            )
        if isinstance(value, str):
            tokens = _tokens(field, value)
        elif isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, Mapping)):
            tokens = []
            for item in value:
                if not isinstance(item, str):
                    raise ConfigurationError(
                        field, item, f"{_EXPECTED[kind]}: each item a string (in {value!r})"
                    )
                tokens.extend(_tokens(field, item))
        else:
            raise ConfigurationError(
                field, value, f"{_EXPECTED[kind]}: a string, a list of strings, True or None"
            )
        if not tokens:
            if kind in _VALUELESS:
                return ()
            raise ConfigurationError(field, value, f"{_EXPECTED[kind]} (for none, \"'none'\")")
        if kind == _FLAG:
            raise ConfigurationError(field, value, "True: this directive takes no value")
        checked: list[str] = []
        for token in tokens:
            source = _check(field, kind, token)
            if source not in checked:
                checked.append(source)
        if "'none'" in checked and len(checked) > 1:
            raise ConfigurationError(
                field, value, "'none' alone (with other sources it is ignored)"
            )
        if kind in (_GROUP_KIND, _WEBRTC, _REQUIRE_TT) and len(checked) > 1:
            raise ConfigurationError(field, value, f"one value: {_EXPECTED[kind]}")
        return tuple(checked)


_EXPECTED: Final = {
    _FETCH: "a list of CSP sources",
    _ANCESTORS: "a list of hosts, schemes, 'self' or 'none'",
    _FLAG: "True",
    _SANDBOX: "True or sandbox tokens (allow-scripts...)",
    _URIS: "report URLs",
    _GROUP_KIND: "a reporting group name",
    _TRUSTED_TYPES: "trusted-types policy names, 'none', 'allow-duplicates' or *",
    _REQUIRE_TT: "'script'",
    _WEBRTC: "'allow' or 'block'",
}


def _tokens(field: str, value: str) -> list[str]:
    for char, why in _SEPARATORS.items():
        if char in value:
            raise ConfigurationError(field, value, f"sources without ';', ',', CR or LF: {why}")
    return value.split()


def _check(field: str, kind: str, token: str) -> str:  # noqa: C901, PLR0911, PLR0912
    """One source of a directive of ``kind``, normalised; or raise naming the field."""
    if not token.isascii() or not token.isprintable():
        raise ConfigurationError(field, token, "ASCII sources (host names in punycode)")
    low = token.lower()
    if kind in (_FETCH, _ANCESTORS):
        if low in _KEYWORDS:
            if kind == _ANCESTORS and low not in _ANCESTOR_KEYWORDS:
                raise ConfigurationError(field, token, _EXPECTED[kind])
            return low
        if token == CSP.NONCE or _NONCE_SOURCE.fullmatch(token) or _HASH_SOURCE.fullmatch(token):
            if kind == _ANCESTORS:
                raise ConfigurationError(field, token, _EXPECTED[kind])
            return token
        _refuse_bare(field, token)
        if _SCHEME_SOURCE.fullmatch(token):
            return low
        if _HOST_SOURCE.fullmatch(token):
            return token
        raise ConfigurationError(field, token, _unknown_source(token))
    if kind == _SANDBOX:
        if low in _SANDBOX_TOKENS:
            return low
        close = difflib.get_close_matches(low, _SANDBOX_TOKENS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(field, token, f"{_EXPECTED[kind]}{hint}")
    if kind == _URIS:
        if _URI.fullmatch(token):
            return token
        raise ConfigurationError(field, token, "a report URL without quotes")
    if kind == _GROUP_KIND:
        if _GROUP.fullmatch(token):
            return token
        raise ConfigurationError(field, token, _EXPECTED[kind])
    if kind == _REQUIRE_TT:
        if low == "'script'":
            return low
        _refuse_bare(field, token)
        raise ConfigurationError(field, token, _EXPECTED[kind])
    if kind == _WEBRTC:
        if low in ("'allow'", "'block'"):
            return low
        _refuse_bare(field, token)
        raise ConfigurationError(field, token, _EXPECTED[kind])
    # trusted-types
    if low in ("'none'", "'allow-duplicates'", "*") or (
        "'" not in token and _POLICY_NAME.fullmatch(token) and low != "allow-duplicates"
    ):
        return low if low.startswith("'") else token
    _refuse_bare(field, token)
    raise ConfigurationError(field, token, _EXPECTED[kind])


def _refuse_bare(field: str, token: str) -> None:
    """Raise for a keyword, nonce or hash missing its single quotes."""
    bare = token.strip("\"'")
    if token == f"'{bare}'" or not _BARE.fullmatch(bare):
        return
    prefix, _, rest = bare.partition("-")
    if prefix.lower() in ("nonce", "sha256", "sha384", "sha512"):
        quoted = f"'{prefix.lower()}-{rest}'"
    else:
        quoted = f"'{bare.lower()}'"
    raise ConfigurationError(
        field, token, f'a CSP source; did you mean "{quoted}" (keywords are quoted)?'
    )


def _unknown_source(token: str) -> str:
    if token.startswith("'"):
        close = difflib.get_close_matches(token.lower(), _KEYWORDS, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return f"a CSP keyword ('self', 'none', 'unsafe-inline'...), nonce or hash{hint}"
    return "a CSP source: a quoted keyword, a nonce, a hash, a scheme (https:) or a host"


def parse_csp(header: str) -> dict[str, tuple[str, ...]]:
    """A Content-Security-Policy header's directives, as a browser splits it (no validation).

    Names lower-case, sources as written (``()`` for a valueless directive); a directive named
    twice keeps its first occurrence, as browsers do.

    >>> parse_csp("default-src 'self'; img-src 'self' data:; upgrade-insecure-requests")
    {'default-src': ("'self'",), 'img-src': ("'self'", 'data:'), 'upgrade-insecure-requests': ()}
    """
    directives: dict[str, tuple[str, ...]] = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            directives.setdefault(tokens[0].lower(), tuple(tokens[1:]))
    return directives
