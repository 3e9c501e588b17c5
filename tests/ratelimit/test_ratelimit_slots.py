"""Redis Cluster runs a script only if its keys share a slot: the keys of one request must.

And a key that several routes share (a global limit, a key function's) must keep one name on
every route, or each route would count it apart.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender.errors import ConfigurationError
from fender.http.ratelimit import HttpRateLimit, RateLimitRequest, rate_limit
from fender.ratelimit._config import RateLimitConfig
from fender.ratelimit._policy import parse_policy


def api_key(request: RateLimitRequest) -> str | None:
    return request.headers.get("x-api-key")


def tenant(request: RateLimitRequest) -> str | None:
    return request.headers.get("x-tenant")


def user(request: RateLimitRequest) -> str | None:
    return request.headers.get("x-user")


SCOPES: list[Any] = ["ip", "route", "global", "user", api_key]
CLUSTER = "redis+cluster://127.0.0.1:7000"


def endpoint(*scopes: Any, names: tuple[str, ...] = ()) -> Any:
    def view() -> None: ...

    names = names or tuple(f"l{index}" for index in range(len(scopes)))
    # decorators apply bottom-up: reversed, so that rule i is scopes[i]
    for scope, name in reversed(list(zip(scopes, names, strict=True))):
        view = rate_limit("10/minute", key=scope, name=name)(view)
    return view


def tag(key: str) -> str:
    found = re.search(r"\{([^}]*)\}", key)
    assert found is not None, key
    return found.group(1)


def keys(http: HttpRateLimit, route: str, view: Any, headers: dict[str, str]) -> dict[str, str]:
    plan = http.plan_for(route, view)

    def made() -> RateLimitRequest:
        return RateLimitRequest("GET", route, route, "198.51.100.7", headers, None)

    return {policy.name: key for key, policy in http.items(plan, "198.51.100.7", route, made)}


def config(**fields: Any) -> RateLimitConfig:
    return RateLimitConfig(default=parse_policy("100/minute"), user_key=user, **fields)


@given(
    scopes=st.lists(st.sampled_from(SCOPES), min_size=1, max_size=4),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "x-api-key": st.sampled_from(["k1", "k{2}"]),
            "x-user": st.sampled_from(["ann", "bob"]),
        },
    ),
)
def test_the_keys_of_one_request_share_one_slot(scopes, headers):
    http = HttpRateLimit(config(redis_url=CLUSTER))
    if "global" in scopes and api_key in scopes:
        with pytest.raises(ConfigurationError):
            http.plan_for("/orders/{id}", endpoint(*scopes))
        return
    found = keys(http, "/orders/{id}", endpoint(*scopes), headers)
    assert len(found) == len(scopes)
    assert len({tag(key) for key in found.values()}) == 1, found


def test_shared_keys_have_one_name_on_every_route():
    http = HttpRateLimit(config())
    headers = {"x-api-key": "k1", "x-user": "ann"}
    alone = keys(http, "/a", endpoint("global", names=("g",)), headers)["g"]
    stacked = keys(http, "/b", endpoint("ip", "user", "global", names=("i", "u", "g")), headers)
    assert stacked["g"] == alone
    by_key = keys(http, "/a", endpoint(api_key, names=("k",)), headers)["k"]
    assert keys(http, "/b", endpoint("ip", api_key, names=("i", "k")), headers)["k"] == by_key


def test_a_single_scope_spreads_clients_over_the_cluster():
    http = HttpRateLimit(config())
    found = keys(http, "/a", endpoint("ip", "ip"), {})
    assert {tag(key) for key in found.values()} == {"198.51.100.7"}


def test_two_route_spanning_limits_on_one_route_are_refused_on_a_cluster_only():
    view = endpoint("global", api_key)
    HttpRateLimit(config()).plan_for("/a", view)  # one Redis: no slots to share
    cluster = HttpRateLimit(config(redis_url=CLUSTER))
    with pytest.raises(ConfigurationError, match="one slot"):
        cluster.plan_for("/a", view)
    cluster.plan_for("/b", endpoint("global", "ip", "user"))  # one of them is fine


def test_tenant_and_user_keys_are_not_confused():
    http = HttpRateLimit(config())
    a = keys(http, "/a", endpoint(tenant, "ip"), {"x-tenant": "t1"})
    b = keys(http, "/a", endpoint(tenant, "ip"), {"x-tenant": "t2"})
    assert a["l0"] != b["l0"]
    assert a["l1"] != b["l1"]  # same client ip, another tenant's slot: another key
