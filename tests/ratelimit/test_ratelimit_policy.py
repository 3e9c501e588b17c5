from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender.errors import ConfigurationError
from fender.ratelimit._policy import (
    Decision,
    KeyBuilder,
    Limit,
    RateLimitPolicy,
    parse_limit,
    parse_policy,
)


@pytest.mark.parametrize(
    ("text", "count", "period", "burst"),
    [
        ("100/minute", 100, 60, 100),
        ("100/minute burst 200", 100, 60, 200),
        ("100 per minute", 100, 60, 100),
        ("5/10seconds", 5, 10, 5),
        ("5 / 10 s", 5, 10, 5),
        ("1/DAY", 1, 86_400, 1),
        ("3/2h burst 1", 3, 7200, 1),
        ("  7/sec  ", 7, 1, 7),
    ],
)
def test_parse_limit(text, count, period, burst):
    assert parse_limit(text) == Limit(count=count, period=period, burst=burst)


def test_without_burst_n_per_period_admits_n_at_once():
    limit = parse_limit("100/minute")
    assert limit.burst == 100
    assert limit.emission_us == 600_000
    assert limit.tolerance_us == 60_000_000


def test_emission_interval_rounds_up_so_the_rate_is_never_exceeded():
    assert parse_limit("7/minute").emission_us == 8_571_429


def test_several_limits_and_header_names():
    policy = parse_policy("10/second; 1000/hour;", name="api")
    assert [str(limit) for limit in policy.limits] == ["10/second", "1000/hour"]
    assert policy.item_names == ("api:1s", "api:3600s")
    assert policy.policy_header == '"api:1s";q=10;w=1, "api:3600s";q=1000;w=3600'
    assert parse_policy("100/minute").policy_header == '"default";q=100;w=60'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "100",
        "100/",
        "/minute",
        "abc/minute",
        "100/fortnight",
        "0/minute",
        "100/0seconds",
        "100/minute burst 0",
        "100/minute burst",
        "100/minute burst -3",
        "-1/minute",
        "1.5/minute",
        "10/second;; 5/minute",
        "10/second; 20/second",
        "2000000/second",
        "1/400days",
        "1/day burst 999999999999",
    ],
)
def test_bad_strings_name_the_field_and_show_the_form(text):
    with pytest.raises(ConfigurationError) as info:
        parse_policy(text, field="FENDER_RATE_LIMIT")
    assert info.value.field == "FENDER_RATE_LIMIT"
    assert info.value.value == text
    assert "100/minute burst 200" in str(info.value)


def test_bad_values_in_dataclasses():
    with pytest.raises(ConfigurationError, match="count"):
        Limit(count=0, period=1)
    with pytest.raises(ConfigurationError, match="burst"):
        Limit(count=1, period=1, burst=-1)
    with pytest.raises(ConfigurationError, match="period"):
        Limit(count=1, period=True)
    with pytest.raises(ConfigurationError, match="name"):
        RateLimitPolicy(name='bad"name', limits=(Limit(count=1, period=1),))
    with pytest.raises(ConfigurationError, match="limits"):
        RateLimitPolicy(limits=())
    with pytest.raises(ConfigurationError, match="prefix"):
        KeyBuilder(prefix="a{b}")
    with pytest.raises(ConfigurationError):
        parse_policy(None)  # type: ignore[arg-type]


limits_st = st.builds(
    Limit,
    count=st.integers(1, 10_000),
    period=st.sampled_from([1, 2, 10, 59, 60, 90, 120, 3600, 7200, 86_400, 5 * 86_400]),
    burst=st.integers(0, 20_000),
)


@given(limits_st)
def test_limit_round_trip(limit):
    assert parse_limit(str(limit)) == limit


@given(
    st.lists(limits_st, min_size=1, max_size=4, unique_by=lambda limit: limit.period),
    st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True),
)
def test_policy_round_trip(limits, name):
    policy = RateLimitPolicy(name=name, limits=tuple(limits))
    assert parse_policy(str(policy), name=name) == policy


@given(
    count=st.integers(1, 1000),
    mult=st.integers(1, 50),
    unit=st.sampled_from(["s", "sec", "second", "seconds", "m", "min", "minutes", "h", "hours"]),
    sep=st.sampled_from(["/", " / ", " per ", "per "]),
    burst=st.none() | st.integers(1, 5000),
)
def test_spellings_parse_to_the_same_limit(count, mult, unit, sep, burst):
    seconds = {"s": 1, "m": 60, "h": 3600}[unit[0]]
    text = f"{count}{sep}{mult}{unit}" + ("" if burst is None else f" burst {burst}")
    expected = Limit(count=count, period=mult * seconds, burst=burst or 0)
    assert parse_limit(text) == expected


@given(st.text(max_size=40))
def test_parser_raises_only_configuration_error(text):
    try:
        policy = parse_policy(text)
    except ConfigurationError:
        return
    assert parse_policy(str(policy)) == policy


def test_decision_headers():
    decision = Decision(True, 100, 60, 42, 16.2, 0.0, "default", "k")
    assert decision.header_value() == '"default";r=42;t=17'
    assert decision.retry_after_header() is None
    rejected = Decision(False, 100, 60, 0, 16.2, 0.25, "default", "k", "limited")
    assert rejected.retry_after_header() == "1"
    never = Decision(False, 100, 60, 0, 0.0, None, "default", "k", "cost")
    assert never.retry_after_header() is None


@given(st.text(max_size=30))
def test_key_builder_tags_cannot_escape(tag):
    keys = KeyBuilder()
    key = keys.build(tag, "ip")
    start = key.index("{")
    end = key.index("}", start)
    assert end > start + 1  # never an empty hash tag (Redis would hash the whole key)
    assert key[end:] == "}:ip"


@given(st.text(min_size=97, max_size=5_000), st.text(min_size=97, max_size=5_000))
def test_overlong_key_pieces_are_bounded_and_stay_distinct(first, second):
    from fender._bounded import BOUNDED_MAX, bounded

    keys = KeyBuilder()
    one, two = keys.build(first, "route", first), keys.build(second, "route", second)
    assert len(one) <= len(keys.prefix) + 4 * BOUNDED_MAX  # escaping may triple the tag
    assert (one == two) is (first == second)
    assert one == keys.build(first, "route", first)  # every instance derives the same key
    assert bounded("/short") == "/short"
