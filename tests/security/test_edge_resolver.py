"""The one resolver: client, scheme and host through trusted proxies; unreadable is untrusted."""

from __future__ import annotations

import pytest

from fender._http import Forwarding, environ_forwarding, forwarding_headers
from fender.ratelimit import ClientIPResolver, Resolution

PROXIES = ClientIPResolver(trusted_proxies=("10.0.0.0/8",))
FORWARDED = ClientIPResolver(trusted_proxies=("10.0.0.0/8",), header="forwarded")
SPOOF = Forwarding(
    x_forwarded_for="1.2.3.4",
    forwarded="for=1.2.3.4;proto=https;host=evil.example",
    x_forwarded_proto="https",
    x_forwarded_host="evil.example",
)


@pytest.mark.parametrize("resolver", [ClientIPResolver(), PROXIES, FORWARDED], ids=str)
def test_spoofed_headers_from_an_untrusted_peer_change_nothing(resolver):
    resolved = resolver.resolve_request("198.51.100.7", SPOOF)
    assert (resolved.address, resolved.trusted) == ("198.51.100.7", True)
    assert (resolved.scheme, resolved.host, resolved.proxied) == (None, None, False)


def test_the_untrusted_peers_headers_are_a_problem_only_when_proxies_are_configured():
    assert PROXIES.resolve_request("198.51.100.7", SPOOF).problem == "untrusted_peer"
    assert PROXIES.resolve_request("198.51.100.7").problem is None
    assert ClientIPResolver().resolve_request("198.51.100.7", SPOOF).problem is None


@pytest.mark.parametrize(
    ("forwarding", "expected"),
    [
        pytest.param(
            Forwarding("6.6.6.6, 203.0.113.9", None, "https", "api.example.com"),
            Resolution("203.0.113.9", True, "https", "api.example.com", True),
            id="xff-one-proxy",
        ),
        pytest.param(
            Forwarding("203.0.113.9, 10.0.0.5", None, "HTTP", "API.example.com:8443"),
            Resolution("203.0.113.9", True, "http", "api.example.com:8443", True),
            id="xff-two-proxies",
        ),
        pytest.param(
            Forwarding("10.1.1.1, 10.0.0.5"),
            Resolution("10.1.1.1", True, None, None, True),
            id="every-hop-ours",
        ),
        pytest.param(
            Forwarding("203.0.113.9", None, "https, http"),
            Resolution("203.0.113.9", True, "http", None, True),
            id="proto-list-nearest-proxy",
        ),
    ],
)
def test_a_trusted_proxys_chain_names_client_scheme_and_host(forwarding, expected):
    assert PROXIES.resolve_request("10.0.0.2", forwarding) == expected


@pytest.mark.parametrize(
    ("xff", "problem"),
    [
        pytest.param(None, "no_chain", id="missing"),
        pytest.param("unknown", "malformed_chain", id="unknown"),
        pytest.param("0177.0.0.1", "malformed_chain", id="octal"),
        pytest.param("_hidden", "malformed_chain", id="obfuscated"),
        pytest.param("203.0.113.9,,10.0.0.5", "malformed_chain", id="empty-entry"),
        pytest.param("1" * 1_048_576, "malformed_chain", id="one-mebibyte"),
        pytest.param(",".join(["10.0.0.9"] * 40), "malformed_chain", id="over-long-chain"),
    ],
)
def test_a_trusted_proxys_unreadable_chain_is_unresolved_not_the_proxy(xff, problem):
    resolved = PROXIES.resolve_request("10.0.0.2", Forwarding(xff))
    # counted as its proxy (rate limits), never trusted as it (admin CIDRs)
    assert (resolved.address, resolved.trusted, resolved.problem) == ("10.0.0.2", False, problem)
    assert PROXIES.resolve("10.0.0.2", x_forwarded_for=xff) == "10.0.0.2"


def test_a_bad_scheme_or_host_from_a_trusted_proxy_is_ignored_and_named():
    bad_proto = PROXIES.resolve_request("10.0.0.2", Forwarding("203.0.113.9", None, "javascript"))
    assert (bad_proto.scheme, bad_proto.problem, bad_proto.trusted) == (
        None,
        "malformed_proto",
        True,
    )
    bad_host = PROXIES.resolve_request(
        "10.0.0.2", Forwarding("203.0.113.9", None, None, "evil.example/path")
    )
    assert (bad_host.host, bad_host.problem) == (None, "malformed_host")


def test_forwarded_takes_proto_and_host_from_the_element_that_names_the_client():
    chain = 'for=6.6.6.6;proto=http, for=203.0.113.9;proto=https;host="shop.example", for=10.0.0.5'
    resolved = FORWARDED.resolve_request("10.0.0.2", Forwarding(forwarded=chain))
    assert resolved == Resolution("203.0.113.9", True, "https", "shop.example", True)
    # X-Forwarded-* are not read when the resolver reads Forwarded: one header family
    other = FORWARDED.resolve_request("10.0.0.2", Forwarding("1.1.1.1", None, "https"))
    assert (other.trusted, other.scheme) == (False, None)


def test_hops_mode_trusts_the_count_and_a_short_chain_is_unresolved():
    hops = ClientIPResolver(trusted_hops=2)
    assert hops.resolve_request("192.0.2.1", Forwarding("6.6.6.6, 203.0.113.9, 10.0.0.5")) == (
        Resolution("203.0.113.9", True, None, None, True)
    )
    short = hops.resolve_request("192.0.2.1", Forwarding("10.0.0.5"))
    assert (short.address, short.trusted) == ("192.0.2.1", False)


def test_a_unix_socket_peer_is_a_trusted_hop_and_without_chain_unresolved():
    assert PROXIES.resolve_request("", Forwarding("203.0.113.9")).address == "203.0.113.9"
    assert PROXIES.resolve_request(None).trusted is False


def test_a_peer_that_is_no_address_is_never_trusted():
    assert ClientIPResolver().resolve_request("testclient").trusted is False


def test_forwarding_headers_are_read_once_from_asgi_and_wsgi_alike():
    raw = [
        (b"x-forwarded-for", b"1.1.1.1"),
        (b"x-forwarded-for", b"2.2.2.2"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"a.example"),
        (b"forwarded", b"for=3.3.3.3"),
    ]
    environ = {
        "HTTP_X_FORWARDED_FOR": "1.1.1.1,2.2.2.2",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "a.example",
        "HTTP_FORWARDED": "for=3.3.3.3",
    }
    assert forwarding_headers(raw) == environ_forwarding(environ)
