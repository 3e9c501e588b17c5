"""The three ways to declare a check take the same options, with the same defaults."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import fender
from fender.errors import ConfigurationError
from fender.health import Check, CheckOptions, HealthRegistry, Kind, check, declared, disk_check
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


def options_of(func) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(func).parameters.values())
    return [p for p in parameters if p.name not in {"self", "target"}]


@pytest.mark.parametrize(
    "func",
    [check, HealthRegistry.check, HealthRegistry.add],
    ids=["check", "registry.check", "add"],
)
def test_every_form_takes_the_check_options_in_field_order_defaulting_to_none(func):
    params = options_of(func)
    assert [p.name for p in params] == OPTION_NAMES
    assert all(p.default is None for p in params)
    assert [p.kind for p in params[1:]] == [inspect.Parameter.KEYWORD_ONLY] * (len(params) - 1)


def test_the_options_are_the_check_fields_and_the_defaults_are_the_checks():
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
