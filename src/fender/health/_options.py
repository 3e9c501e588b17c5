"""The options of a health check, one list for every way to declare one.

``@fender.health.check``, :meth:`HealthRegistry.add` and :meth:`HealthRegistry.check` take the
same keyword options (:class:`CheckOptionsDict`), the :class:`~fender.health.Check` fields in
their order, each None when not given. A given option overrides; one not given keeps the value
of a prepared Check (a built-in factory's), else the Check field's default. So the names live
here once, and the defaults once, in the Check dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypedDict, TypeVar

from fender.health._check import Check, CheckFunc, Kind

__all__ = ["CheckOptions", "CheckOptionsDict", "decorate"]

F = TypeVar("F", bound=Callable[..., Any])


class CheckOptionsDict(TypedDict, total=False):
    """The keyword options of ``check``, ``add`` and ``HealthRegistry.check``: see CheckOptions."""

    name: str | None
    kind: Kind | str | None
    critical: bool | None
    timeout: float | None
    tags: Iterable[str] | str | None
    cache_ttl: float | None
    component: str | None
    component_type: str | None
    measurement: str | None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CheckOptions:
    """Options given for a check; None (the default of each) means "not given".

    The fields are the :class:`~fender.health.Check` fields but ``func``, in the same order;
    see there for their meaning and defaults. ``tags`` may be one tag as a string.

    Example:
        >>> CheckOptions(name="payments", critical=False).given()
        {'name': 'payments', 'critical': False}
    """

    name: str | None = None
    kind: Kind | str | None = None
    critical: bool | None = None
    timeout: float | None = None
    tags: Iterable[str] | str | None = None
    cache_ttl: float | None = None
    component: str | None = None
    component_type: str | None = None
    measurement: str | None = None

    def given(self) -> dict[str, Any]:
        """The options given, by name, in field order (``tags`` as a frozenset)."""
        options: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name == "tags":
                value = frozenset((value,) if isinstance(value, str) else value)
            options[field.name] = value
        return options

    def apply(self, target: Check | CheckFunc) -> Check:
        """``target`` as a Check with these options: a prepared Check overridden, or a new one.

        A new Check's name defaults to the callable's ``__name__``.

        Raises:
            ConfigurationError: an invalid option.
        """
        options = self.given()
        if isinstance(target, Check):
            return dataclasses.replace(target, **options)
        options.setdefault("name", getattr(target, "__name__", ""))
        return Check(func=target, **options)


def decorate(
    name: str | F | None,
    options: CheckOptionsDict,
    register: Callable[[F, CheckOptions], object],
) -> F | Callable[[F], F]:
    """The three forms of a check decorator: ``@check``, ``@check("name")``, ``@check(...)``.

    ``name`` is the decorator's positional argument: the function itself when used bare, else
    the check's name (or None). ``register(func, options)`` records the check; the decorator
    returns the function unchanged.

    Raises:
        TypeError: the name given both positionally and as a keyword.
    """
    if name is not None and "name" in options:
        raise TypeError("check() got the name twice: positionally and as name=")
    if callable(name):
        register(name, CheckOptions(**options))
        return name
    given = CheckOptions(**options)
    if name is not None:
        given = dataclasses.replace(given, name=name)

    def decorator(func: F) -> F:
        register(func, given)
        return func

    return decorator
