"""Host is validated and never reflected raw; client-address headers from untrusted
peers never reach the upstream (a real ``consentgate serve --config`` in front of a
recording upstream, tests/edge_support.py).

Site ``pub`` (Host ``pub.example``) declares its public origin
``https://www.pub.example``; site ``main`` serves any other Host. No peer is trusted.
"""

from __future__ import annotations

import re

import pytest

from tests.edge_support import (  # noqa: F401 (fixtures)
    RecordingUpstream,
    exchange,
    get,
    port_fixture,
    upstream_fixture,
)

INJECTIONS = [
    "a;Secure;SameSite=None",
    'a";for=10.9.8.7',
    "a,host=evil",
    "a b",
    "a/b",
    "user@a",
    "a:99999999",
    "[::1",
    "a\\b",
    "é.example",
]


@pytest.mark.parametrize("host", INJECTIONS)
def test_an_invalid_host_is_refused_before_the_upstream(
    port: int, upstream: RecordingUpstream, host: str
) -> None:
    before = len(upstream.seen)
    raw = f"GET /page HTTP/1.1\r\nHost: {host}\r\nCookie: _ga=GA1.2.3\r\n\r\n".encode()
    answer = exchange(port, raw)
    assert answer is not None and answer.status == 400
    assert answer.header("content-type") == "application/json"
    assert answer.all("set-cookie") == []
    assert upstream.seen[before:] == []


def last_seen(upstream: RecordingUpstream, target: str) -> dict[str, str]:
    seen = upstream.requests_for(target)[-1]
    return {k.lower(): v for k, v in seen.headers}


def test_forwarded_names_the_validated_host_quoted(port: int, upstream: RecordingUpstream) -> None:
    get(port, "/fwd-main", host="Shop.Example:8080")
    headers = last_seen(upstream, "/fwd-main")
    assert headers["forwarded"] == 'for=127.0.0.1;proto=http;host="shop.example:8080"'
    assert headers["x-forwarded-host"] == "shop.example:8080"


def test_a_declared_public_origin_is_what_the_upstream_hears(
    port: int, upstream: RecordingUpstream
) -> None:
    get(port, "/fwd-pub", host="pub.example")
    headers = last_seen(upstream, "/fwd-pub")
    assert headers["forwarded"] == 'for=127.0.0.1;proto=https;host="www.pub.example"'
    assert headers["x-forwarded-host"] == "www.pub.example"
    assert headers["x-forwarded-proto"] == "https"


@pytest.mark.parametrize(
    ("host", "location"),
    [
        ("pub.example", "https://www.pub.example/landing"),
        ("shop.example:8080", "http://shop.example:8080/landing"),
    ],
)
def test_a_scheme_relative_redirect_to_the_upstream_is_rewritten(
    port: int, host: str, location: str
) -> None:
    answer = get(port, "/redirect", host=host)
    assert answer.status == 302 and answer.header("location") == location


def test_expired_cookies_name_only_the_declared_origin_as_domain(port: int) -> None:
    answer = get(port, "/page", host="pub.example", extra="Cookie: _ga=GA1.2.3; _gid=x\r\n")
    assert answer.status == 200
    expiring = [c for c in answer.all("set-cookie") if c.startswith(("_ga=", "_gid="))]
    assert expiring  # no consent: the analytics cookies are expired
    domains = {m for c in expiring for m in re.findall(r"Domain=([^;]*)", c)}
    assert domains == {"www.pub.example", "pub.example"}
    for cookie in expiring:
        attributes = [a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]]
        assert set(attributes) <= {"expires", "max-age", "path", "domain"}, cookie


def test_client_address_headers_from_an_untrusted_peer_are_dropped(
    port: int, upstream: RecordingUpstream
) -> None:
    spoofed = {
        "X-Real-IP": "10.9.8.7",
        "True-Client-IP": "10.9.8.7",
        "CF-Connecting-IP": "10.9.8.7",
        "Fastly-Client-IP": "10.9.8.7",
        "X-Client-IP": "10.9.8.7",
        "X-Cluster-Client-IP": "10.9.8.7",
        "X-Forwarded-For": "10.9.8.7",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "for=10.9.8.7;host=evil.example",
    }
    extra = "".join(f"{k}: {v}\r\n" for k, v in spoofed.items())
    get(port, "/spoofed", extra=extra)
    headers = last_seen(upstream, "/spoofed")
    assert "10.9.8.7" not in repr(headers) and "evil.example" not in repr(headers)
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"


def test_head_of_a_page_has_the_length_of_the_page_served(port: int) -> None:
    got = get(port, "/page")
    assert got.status == 200 and b"<html" in got.body
    raw = b"HEAD /page HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
    head = exchange(port, raw, head_request=True)
    assert head is not None and head.status == 200
    assert head.header("content-length") == str(len(got.body))
    assert head.header("content-type") == got.header("content-type")


@pytest.mark.parametrize(
    ("prior", "kept"),
    [
        ('for=192.0.2.1;proto=https;host="shop.example"', True),
        ('for="[2001:db8::1]", for=192.0.2.2', True),
        ('for=192.0.2.1, host="open', False),  # would swallow the element appended
        ("for=192.0.2.1;host=a b", False),
    ],
)
def test_a_trusted_peers_forwarded_is_chained_only_when_it_parses(prior: str, kept: bool) -> None:
    from consentgate.proxy.headers import Visitor, request_headers_for_upstream

    visitor = Visitor("127.0.0.1", "http", "shop.example", trusted_peer=True)
    out = dict(
        request_headers_for_upstream(
            [(b"host", b"shop.example"), (b"forwarded", prior.encode())],
            visitor,
            "",
            consent_token="t",
        )
    )
    ours = b'for=127.0.0.1;proto=http;host="shop.example"'
    assert out[b"forwarded"] == (prior.encode() + b", " + ours if kept else ours)
