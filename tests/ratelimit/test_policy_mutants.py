"""Policy parsing and validation at the exact edges; each error names its field (mutation tests)."""

from __future__ import annotations

import pytest

from fender.errors import ConfigurationError
from fender.ratelimit._policy import (
    KeyBuilder,
    Limit,
    RateLimitPolicy,
    parse_limit,
    parse_policy,
)

FORM = (
    'a rate such as "100/minute", "100/minute burst 200", "5/10seconds" '
    'or several separated by ";" ("10/second; 1000/hour")'
)
MAX_PERIOD = 366 * 86_400


def _error(call, *args, **kwargs):
    with pytest.raises(ConfigurationError) as info:
        call(*args, **kwargs)
    return info.value


def _fields(error):
    return error.field, error.value, error.expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"count": 0, "period": 1}, ("count", 0, "an integer >= 1")),
        ({"count": 1, "period": 0}, ("period", 0, "an integer >= 1")),
        ({"count": 1, "period": True}, ("period", True, "an integer >= 1")),
        ({"count": 1, "period": 1, "burst": -2}, ("burst", -2, "an integer >= 1")),
        (
            {"count": 1, "period": MAX_PERIOD + 1},
            ("period", MAX_PERIOD + 1, "at most 366 days in seconds"),
        ),
        (
            {"count": 1_000_001, "period": 1},
            ("count", 1_000_001, "at most one request per microsecond"),
        ),
        (
            {"count": 1, "period": 1, "burst": 9_007_199_254},
            ("burst", 9_007_199_254, "a burst whose window fits in 2**53 microseconds"),
        ),
        # Exactly 2**53: 140737488339703 emissions of 64 us plus the period of 10**6 us.
        (
            {"count": 15_625, "period": 1, "burst": 140_737_488_339_703},
            ("burst", 140_737_488_339_703, "a burst whose window fits in 2**53 microseconds"),
        ),
        # No time unit up to 1 s keeps count * window below 2**50.
        (
            {"count": 10**11, "period": MAX_PERIOD},
            ("count", 10**11, "a smaller count for this period"),
        ),
        # A unit of 10 s would, but the units stop at 1 s.
        (
            {"count": 40_000_000, "period": MAX_PERIOD},
            ("count", 40_000_000, "a smaller count for this period"),
        ),
        # count * period == 2**50 in seconds: not below it.
        (
            {"count": 2**26, "period": 2**24},
            ("count", 2**26, "a smaller count for this period"),
        ),
    ],
)
def test_limit_errors_name_the_field_the_value_and_the_rule(kwargs, expected):
    assert _fields(_error(Limit, **kwargs)) == expected


def test_limits_at_their_edges_are_accepted():
    assert Limit(count=1, period=MAX_PERIOD).period == MAX_PERIOD
    assert Limit(count=1_000_000, period=1).emission_us == 1
    assert Limit(count=1, period=1, burst=9_007_199_253).tolerance_us == 9_007_199_253_000_000
    assert Limit(count=2**26 - 1, period=2**24).sliding_unit_us == 1_000_000


@pytest.mark.parametrize(
    ("count", "period", "unit"),
    [(10, 60, 1), (1_000_000, 86_400, 100), (135_000, 86_400, 100), (10**6, MAX_PERIOD, 10**5)],
)
def test_sliding_unit_is_the_smallest_power_of_ten_that_stays_exact(count, period, unit):
    limit = Limit(count=count, period=period)
    assert limit.sliding_unit_us == unit
    assert limit.sliding_window == limit.period_us // unit
    assert type(limit.sliding_window) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", FORM),
        ("100/fortnight", f"{FORM}; the unit is second, minute, hour or day"),
        ("100/minute burst 0", f"{FORM}, with a burst of at least 1"),
        (
            "0/minute",
            f"{FORM}, with count=0 is invalid: expected an integer >= 1",
        ),
    ],
)
def test_parse_limit_errors_quote_the_field_and_the_text(text, expected):
    error = _error(parse_limit, text, field="FENDER_RATE_LIMIT")
    assert _fields(error) == ("FENDER_RATE_LIMIT", text, expected)
    assert _error(parse_limit, text).field == "rate"


def test_parse_limit_refuses_what_is_not_a_string():
    assert _fields(_error(parse_limit, 100, field="F")) == ("F", 100, FORM)


def test_parse_policy_defaults_to_the_field_rate_and_quotes_the_whole_setting():
    error = _error(parse_policy, "10/second; 5/fortnight")
    assert _fields(error) == (
        "rate",
        "10/second; 5/fortnight",
        f"{FORM}; the unit is second, minute, hour or day",
    )
    # The cause names the same field, for whoever reads the traceback.
    error = _error(parse_policy, "10/second; 0/minute", field="FENDER_RATE_LIMIT")
    assert error.__cause__.field == "FENDER_RATE_LIMIT"
    assert error.__cause__.value == " 0/minute"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"name": "a b", "limits": (Limit(count=1, period=1),)},
            ("name", "a b", "1 to 64 characters of letters, digits and _ . : / -"),
        ),
        ({"limits": ()}, ("limits", (), "one or more Limit objects")),
        ({"limits": ("1/second",)}, ("limits", ("1/second",), "one or more Limit objects")),
        (
            {"limits": (Limit(count=1, period=60), Limit(count=5, period=60))},
            ("limits", "1/minute; 5/minute", "no two limits per period"),
        ),
        (
            {"limits": (Limit(count=1, period=1),), "fallback": "bogus"},
            ("fallback", "bogus", "local or open or closed"),
        ),
    ],
)
def test_policy_errors_name_the_field(kwargs, expected):
    assert _fields(_error(RateLimitPolicy, **kwargs)) == expected


@pytest.mark.parametrize("fallback", [None, "local", "open", "closed"])
def test_every_fallback_mode_is_accepted(fallback):
    policy = RateLimitPolicy(limits=(Limit(count=1, period=1),), fallback=fallback)
    assert policy.fallback == fallback


@pytest.mark.parametrize("prefix", ["a{b", "a}b", "{", 5, None])
def test_key_prefix_without_braces(prefix):
    assert _fields(_error(KeyBuilder, prefix=prefix)) == (
        "prefix",
        prefix,
        "a string without { or }",
    )


@pytest.mark.parametrize(
    ("tag", "built"),
    [
        ("203.0.113.9", "fender:rl:{203.0.113.9}:route:/x"),
        ("a%b{c}d", "fender:rl:{a%25b%7Bc%7Dd}:route:/x"),
        ("%7B", "fender:rl:{%257B}:route:/x"),
        ("", "fender:rl:{%00}:route:/x"),
    ],
)
def test_key_builder_encodes_the_tag_exactly(tag, built):
    assert KeyBuilder().build(tag, "route", "/x") == built


def test_key_builder_keeps_a_part_of_the_longest_kept_length():
    part = "p" * 96
    assert KeyBuilder(prefix="x").build("t", part) == f"x:{{t}}:{part}"
