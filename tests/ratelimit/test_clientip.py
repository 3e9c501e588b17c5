from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fender.errors import ConfigurationError
from fender.ratelimit._clientip import ClientIPResolver, parse_node, rate_limit_key

PROXY = "10.0.0.2"
behind_proxy = ClientIPResolver(trusted_proxies=("10.0.0.0/8", "fd00::/8"))


def test_no_trusted_proxy_ignores_a_forged_header():
    resolver = ClientIPResolver()
    assert resolver.resolve("198.51.100.7", x_forwarded_for="1.2.3.4") == "198.51.100.7"
    assert resolver.resolve("198.51.100.7", forwarded="for=1.2.3.4") == "198.51.100.7"
    assert rate_limit_key(resolver.resolve("198.51.100.7", x_forwarded_for="9.9.9.9")) == (
        rate_limit_key(resolver.resolve("198.51.100.7"))
    )


def test_an_untrusted_peer_is_the_client_even_with_trusted_proxies_configured():
    assert behind_proxy.resolve("198.51.100.7", x_forwarded_for="10.0.0.3") == "198.51.100.7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("1.1.1.1, 203.0.113.9", "203.0.113.9"),  # the forged leftmost entry is ignored
        ("1.1.1.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # a second trusted hop is skipped
        ("203.0.113.9:5555", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("10.0.0.9, 10.0.0.8", "10.0.0.9"),  # all trusted: nobody else wrote any of it
        (" 1.1.1.1 ,203.0.113.9 ", "203.0.113.9"),
    ],
)
def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_counts(header, expected):
    assert behind_proxy.resolve(PROXY, x_forwarded_for=header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "1.1.1.1, garbage",
        "1.1.1.1,",
        "unknown",
        "_hidden",
        "203.0.113.9:99999",
        "[2001:db8::1",
        "2001:db8::1]:80",
        "fe80::1%eth0",
        "1.1.1.1, " * 10_000 + "10.0.0.1, " * 20 + "10.0.0.5",  # a chain of only proxies, too long
        "\x00\xff",
    ],
)
def test_malformed_headers_fall_back_to_the_peer(header):
    assert behind_proxy.resolve(PROXY, x_forwarded_for=header) == PROXY


def test_a_huge_forged_prefix_does_not_hide_the_real_client():
    header = "1.1.1.1, " * 100_000 + "203.0.113.9"
    assert behind_proxy.resolve(PROXY, x_forwarded_for=header) == "203.0.113.9"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("for=203.0.113.9", "203.0.113.9"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ("for=1.1.1.1, for=203.0.113.9;proto=https;by=10.0.0.2", "203.0.113.9"),
        ("For=203.0.113.9, for=10.0.0.5", "203.0.113.9"),
        ("for=unknown", PROXY),
        ("for=_hidden, for=203.0.113.9", "203.0.113.9"),
        ("for=203.0.113.9, for=_hidden", PROXY),
        ("proto=https", PROXY),
        ("for=1.1.1.1;for=2.2.2.2", PROXY),
        ("for", PROXY),
    ],
)
def test_forwarded_header(header, expected):
    resolver = ClientIPResolver(trusted_proxies=("10.0.0.0/8",), header="forwarded")
    assert resolver.resolve(PROXY, forwarded=header, x_forwarded_for="6.6.6.6") == expected


def test_trusted_hops_mode():
    two = ClientIPResolver(trusted_hops=2)
    assert two.resolve(PROXY, x_forwarded_for="1.1.1.1, 203.0.113.9, 10.0.0.1") == "203.0.113.9"
    assert two.resolve(PROXY, x_forwarded_for="10.0.0.1") == PROXY  # fewer hops than proxies
    assert two.resolve(PROXY, x_forwarded_for="x, 10.0.0.1") == PROXY
    both = ClientIPResolver(trusted_hops=1, trusted_proxies=("10.0.0.0/8",))
    assert both.resolve("198.51.100.7", x_forwarded_for="1.1.1.1") == "198.51.100.7"
    assert both.resolve(PROXY, x_forwarded_for="1.1.1.1") == "1.1.1.1"


def test_peer_that_is_not_an_address_is_returned_as_is():
    assert behind_proxy.resolve("testclient", x_forwarded_for="1.2.3.4") == "testclient"
    assert ClientIPResolver().resolve("::ffff:10.1.2.3") == "10.1.2.3"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"trusted_proxies": ("10.0.0.0/33",)}, "trusted_proxies"),
        ({"trusted_proxies": ("*",)}, "trusted_proxies"),
        ({"trusted_proxies": "10.0.0.0/8"}, "trusted_proxies"),
        ({"trusted_hops": -1}, "trusted_hops"),
        ({"header": "x-real-ip"}, "header"),
        ({"max_hops": 0}, "max_hops"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigurationError) as info:
        ClientIPResolver(**kwargs)
    assert info.value.field == field


def test_trusted_networks_are_parsed_once():
    resolver = ClientIPResolver(trusted_proxies=("10.0.0.1", " 192.168.0.0/16 "))
    assert resolver.networks == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("192.168.0.0/16"),
    )


def test_rate_limit_key_groups_ipv6_by_64():
    assert rate_limit_key("2001:db8:1:2:aaaa::1") == rate_limit_key("2001:db8:1:2:bbbb::9")
    assert rate_limit_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert rate_limit_key("2001:db8:1:3::1") != rate_limit_key("2001:db8:1:2::1")
    assert rate_limit_key("2001:db8::1", ipv6_prefix=128) == "2001:db8::1/128"
    assert rate_limit_key("203.0.113.9") == "203.0.113.9"
    assert rate_limit_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert rate_limit_key("testclient") == "testclient"


def valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


header_st = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.one_of(
            st.ip_addresses().map(str),
            st.ip_addresses(v=6).map(lambda ip: f"[{ip}]:{80}"),
            st.sampled_from(["unknown", "_x", '"for"', "", " ", "[", "]:", "::", "10.0.0.9"]),
            st.text(max_size=10),
        ),
        max_size=8,
    ).map(", ".join),
)
peer_st = st.one_of(
    st.ip_addresses().map(str), st.sampled_from([PROXY, "fd00::1"]), st.text(max_size=20)
)


@given(peer=peer_st, xff=header_st, fwd=header_st, hops=st.integers(0, 3), which=st.booleans())
def test_fuzz_never_raises_and_returns_an_ip_or_the_peer(peer, xff, fwd, hops, which):
    resolver = ClientIPResolver(
        trusted_proxies=("10.0.0.0/8", "fd00::/8"),
        trusted_hops=hops,
        header="forwarded" if which else "x-forwarded-for",
    )
    result = resolver.resolve(peer, x_forwarded_for=xff, forwarded=fwd)
    assert result == peer or valid_ip(result)
    key = rate_limit_key(result)
    assert key == result or valid_ip(key) or ipaddress.ip_network(key)


@given(peer=st.ip_addresses().map(str), xff=header_st)
def test_fuzz_without_trusted_proxies_the_header_never_matters(peer, xff):
    assert ClientIPResolver().resolve(peer, x_forwarded_for=xff) == str(parse_node(peer))


def test_a_unix_socket_peer_is_a_trusted_hop_once_proxies_are_configured():
    # A unix socket has no peer address ("" in fender, no REMOTE_ADDR): only local processes
    # (our proxy) can connect, so its X-Forwarded-For names the client, as gunicorn assumes.
    assert behind_proxy.resolve("", x_forwarded_for="203.0.113.9") == "203.0.113.9"
    assert behind_proxy.resolve("", x_forwarded_for="203.0.113.9, 10.0.0.3") == "203.0.113.9"
    assert ClientIPResolver(trusted_hops=1).resolve("", x_forwarded_for="1.1.1.1, 2.2.2.2") == (
        "2.2.2.2"
    )
    assert behind_proxy.resolve("", x_forwarded_for="garbage") == ""
    # Nothing configured: headers stay ignored, even on a unix socket.
    assert ClientIPResolver().resolve("", x_forwarded_for="203.0.113.9") == ""
