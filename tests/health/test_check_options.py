"""The three ways to declare a check take the same options, with the same defaults."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

import fender
from fender.errors import ConfigurationError
from fender.health import (
    Check,
    CheckOptions,
    CheckOptionsDict,
    HealthRegistry,
    Kind,
    check,
    declared,
    disk_check,
)
from fender.health import _declared as declared_module

OPTION_NAMES = [f.name for f in dataclasses.fields(Check) if f.name != "func"]


@pytest.fixture(autouse=True)
def no_declarations(monkeypatch):
    # Declarations are process-wide and join every app built later: keep these to the test.
    monkeypatch.setattr(declared_module, "_declared", [])


@pytest.fixture
def registry():
    reg = HealthRegistry()
    yield reg
    reg.close()


@pytest.mark.parametrize(
    ("func", "positional"),
    [
        (check, ["name"]),
        (HealthRegistry.check, ["self", "name"]),
        (HealthRegistry.add, ["self", "target"]),
    ],
    ids=["check", "registry.check", "add"],
)
def test_every_form_takes_the_same_keyword_options(func, positional):
    *fixed, options = inspect.signature(func).parameters.values()
    assert [p.name for p in fixed] == positional
    assert all(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in fixed if p.name == "name")
    assert options.kind is inspect.Parameter.VAR_KEYWORD
    assert typing.get_type_hints(func)["options"] == typing.Unpack[CheckOptionsDict]


def test_the_options_are_the_check_fields_and_the_defaults_are_the_checks():
    assert list(typing.get_type_hints(CheckOptionsDict)) == OPTION_NAMES
    assert [f.name for f in dataclasses.fields(CheckOptions)] == OPTION_NAMES
    assert all(f.default is None for f in dataclasses.fields(CheckOptions))
    assert CheckOptions().apply(len) == Check(name="len", func=len)


def probe() -> bool:
    return True


def test_declared_bare():
    assert check(probe) is probe
    assert declared() == ((probe, {}),)


def test_declared_with_a_positional_name():
    assert check("payments")(probe) is probe
    assert declared() == ((probe, {"name": "payments"}),)


def test_declared_with_keywords():
    decorator = check(name="payments", critical=False, timeout=1.0, tags="billing")
    assert decorator(probe) is probe
    assert declared() == (
        (probe, {"name": "payments", "critical": False, "timeout": 1.0, "tags": {"billing"}}),
    )


def test_fender_health_check_declares_in_all_three_forms():
    @fender.health.check
    def bare() -> None:
        return None

    @fender.health.check("named")
    def positional() -> None:
        return None

    @fender.health.check(name="keyworded", kind="info", cache_ttl=5.0)
    async def keywords() -> None:
        return None

    registry = HealthRegistry()
    try:
        for func, options in declared():
            registry.add(func, **options)
        checks = {c.name: c for c in registry.select()}
    finally:
        registry.close()
    assert list(checks) == ["bare", "named", "keyworded"]
    assert checks["keyworded"].kind is Kind.INFO
    assert checks["keyworded"].cache_ttl == 5.0
    assert checks["named"] == Check(name="named", func=positional)


def test_registry_check_bare(registry):
    assert registry.check(probe) is probe
    assert registry.select() == (Check(name="probe", func=probe),)


def test_registry_check_with_a_positional_name(registry):
    assert registry.check("payments")(probe) is probe
    assert registry.select() == (Check(name="payments", func=probe),)


def test_registry_check_with_keywords(registry):
    registry.check(name="payments", critical=False, timeout=1.0, tags=["billing", "pay"])(probe)
    (registered,) = registry.select()
    assert registered == Check(
        name="payments",
        func=probe,
        critical=False,
        timeout=1.0,
        tags=frozenset({"billing", "pay"}),
    )


def test_one_tag_as_a_string_is_one_tag_everywhere(registry):
    registry.add(probe, name="a", tags="storage")
    registry.check("b", tags="storage")(probe)
    assert {c.tags for c in registry.select()} == {frozenset({"storage"})}
    assert Check(name="c", func=probe, tags="storage").tags == frozenset({"storage"})


def test_add_overrides_only_the_options_given_on_a_prepared_check(registry):
    prepared = disk_check("/")
    registered = registry.add(prepared, critical=True, timeout=0.5)
    assert registered == dataclasses.replace(prepared, critical=True, timeout=0.5)
    assert registered.measurement == "utilization"  # the factory's value, kept


def test_an_invalid_option_names_its_field(registry):
    with pytest.raises(ConfigurationError, match=r"probe\.timeout"):
        registry.check(timeout=0)(probe)
    with pytest.raises(ConfigurationError, match="name"):
        registry.check("no spaces")(probe)


def test_a_name_given_twice_is_refused(registry):
    with pytest.raises(TypeError, match="twice"):
        registry.check("a", name="b")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="twice"):
        check("a", name="b")  # type: ignore[call-overload]
