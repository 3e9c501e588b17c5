"""How a setting is declared (its environment names, description, secrecy) and described."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import AliasChoices, Field
from pydantic.fields import FieldInfo

__all__ = ["ConflictError", "EnvVar", "describe", "env_field"]


class ConflictError(ValueError):
    """A value valid alone but not with the other settings; names the field to blame."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        super().__init__(expected)
        self.field = field
        self.value = value


def env_field(*names: str, description: str, secret: bool = False, **kwargs: Any) -> Any:
    """Declare a field read from the first of ``names`` that is set."""
    return Field(
        validation_alias=AliasChoices(*names),
        description=description,
        json_schema_extra={"env": list(names), "secret": secret},
        **kwargs,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class EnvVar:
    """One documented environment variable of the settings model.

    ``choices`` are the values a field of fixed choices accepts (empty for any other field).
    """

    name: str
    aliases: tuple[str, ...]
    field: str
    default: str
    description: str
    secret: bool
    choices: tuple[str, ...] = ()


def describe(fields: Mapping[str, FieldInfo]) -> list[EnvVar]:
    """The environment variables of ``fields`` (declared with :func:`env_field`), in order."""
    result = []
    for name, info in fields.items():
        meta = _field_meta(info)
        names = tuple(str(n) for n in meta["env"])
        result.append(
            EnvVar(
                name=names[0],
                aliases=names[1:],
                field=name,
                default=_render_default(info.default),
                description=info.description or "",
                secret=bool(meta["secret"]),
                choices=_choices(info),
            )
        )
    return result


def _field_meta(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    if not isinstance(extra, dict):  # every field is declared through env_field()
        raise TypeError("settings fields must be declared with env_field()")
    return extra


def _render_default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _choices(info: FieldInfo) -> tuple[str, ...]:
    choices = get_args(info.annotation)
    if choices and all(isinstance(c, str) for c in choices):
        return tuple(choices)
    return ()
