"""Host values a hostile reviewer found accepted by the edge and passed on to the upstream
(`Host`, `X-Forwarded-Host`, `Forwarded`): a port no connection can have and an IPv6
literal that is not an address. Raw sockets against a real ``consentgate serve`` in front
of a recording upstream (tests/edge_support.py)."""

from __future__ import annotations

import pytest

from tests.edge_support import (  # noqa: F401 (fixtures)
    RecordingUpstream,
    exchange,
    get,
    port_fixture,
    upstream_fixture,
)


@pytest.mark.parametrize(
    "host", ["shop.example:99999", "shop.example:65536", "[::1::2]", "[::1]:70000", "[1.2.3]"]
)
def test_an_impossible_host_is_refused(port: int, upstream: RecordingUpstream, host: str) -> None:
    path = "/impossible-host"
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    answer = exchange(port, raw)
    assert answer is not None and answer.status == 400, answer
    assert answer.header("content-type") == "application/json"
    assert upstream.requests_for(path) == []


@pytest.mark.parametrize("host", ["shop.example:65535", "[::1]:8080", "[2001:db8::1]"])
def test_a_possible_host_is_served(port: int, upstream: RecordingUpstream, host: str) -> None:
    answer = get(port, "/fine", host=host)
    assert answer.status == 200 and answer.body == b"/fine"
