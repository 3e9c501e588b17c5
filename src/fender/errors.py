"""The exceptions fender raises; all derive from :class:`FenderError`."""

from __future__ import annotations

__all__ = ["CallNotPermitted", "ConfigurationError", "FenderError", "mask"]


class FenderError(Exception):
    """Base class of every exception fender raises on purpose."""


class ConfigurationError(FenderError, ValueError):
    """A setting or option is invalid; raised when the app is built, never per request.

    The message names the field, shows the value (masked when secret) and says what is expected.
    """

    def __init__(self, field: str, value: object, expected: str, *, secret: bool = False) -> None:
        """Describe the bad ``field`` holding ``value``, and what was ``expected``."""
        self.field = field
        self.value = mask(value) if secret else value
        self.expected = expected
        super().__init__(f"{field}={self.value!r} is invalid: expected {expected}")


class CallNotPermitted(FenderError):  # noqa: N818  (resilience4j's name, which users know)
    """A circuit breaker rejected the call; ``retry_after`` seconds until it may admit one."""

    def __init__(self, name: str, retry_after: float) -> None:
        """Reject a call through breaker ``name``."""
        self.name = name
        self.retry_after = retry_after
        super().__init__(f"circuit breaker {name!r} is open; retry after {retry_after:.3f}s")


def mask(value: object) -> str:
    """Return a secret in a form safe to print: only its length.

    >>> mask("s3cr3t-value-with-entropy")
    '***(25 chars)'
    """
    text = "" if value is None else str(value)
    return f"***({len(text)} chars)" if text else ""
