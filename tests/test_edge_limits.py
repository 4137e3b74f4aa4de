"""Limits and timeouts of the edge (consentgate/corked.py) on a real ``consentgate
serve``: header bombs refused as they arrive while others are served, slow and idle
connections closed, malformed requests answered with the documented JSON error.

The server runs with 1-second timeouts (tests/edge_support.py); waits are bounded
generously (seconds), and what is asserted is behaviour: who got closed, who got served.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest

from tests.edge_support import (  # noqa: F401 (fixtures)
    RecordingUpstream,
    closed_within,
    connect,
    exchange,
    port_fixture,
    read_answer,
    upstream_fixture,
)

HEALTH = b"GET /_consent/healthz HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
MiB = 1024 * 1024


def health_answers(port: int) -> bool:
    answer = exchange(port, HEALTH)
    return answer is not None and answer.status == 200


def error_of(answer: object) -> tuple[int, str]:
    assert answer is not None
    status = answer.status  # type: ignore[attr-defined]
    assert answer.header("content-type") == "application/json"  # type: ignore[attr-defined]
    doc = json.loads(answer.body)  # type: ignore[attr-defined]
    assert set(doc["error"]) == {"code", "message"} and doc["error"]["message"]
    return status, doc["error"]["code"]


def test_a_32_mib_header_is_refused_while_a_probe_is_served(
    port: int, upstream: RecordingUpstream
) -> None:
    before = len(upstream.seen)
    bomb = connect(port, timeout=10)
    bomb.sendall(b"GET /bomb HTTP/1.1\r\nHost: shop.example\r\nX-Bomb: ")
    piece = b"a" * (256 * 1024)
    sent, probes, cut = 0, 0, False
    while sent < 32 * MiB:
        try:
            bomb.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            cut = True  # the server closed after its answer: the rest is not needed
            break
        sent += len(piece)
        if sent % (4 * MiB) == 0:  # the bomb is still going out: others are served
            assert health_answers(port)
            probes += 1
    assert probes >= 1 or cut
    answer = read_answer(bomb)
    bomb.close()
    assert error_of(answer) == (431, "headers_too_large")
    assert answer is not None and answer.header("connection") == "close"
    assert health_answers(port)
    assert "/bomb" not in [s.target for s in upstream.seen[before:]]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 40000 + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X%d: 1\r\n" % i for i in range(101))
            + b"\r\n",
            431,
            "headers_too_large",
        ),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request"),  # HTTP/1.1 needs a Host
        (b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /\r\n\r\n", 505, "http_version_not_supported"),  # HTTP/0.9
    ],
    ids=["long line", "big header", "101 headers", "bare LF", "no Host", "NUL", "2.0", "0.9"],
)
def test_malformed_requests_get_the_json_error_and_a_close(
    port: int, raw: bytes, status: int, code: str
) -> None:
    answer = exchange(port, raw)
    assert error_of(answer) == (status, code)
    assert answer is not None and answer.header("connection") == "close"


@pytest.mark.parametrize("method", ["CONNECT", "TRACE"])
def test_connect_and_trace_get_405_with_allow(port: int, method: str) -> None:
    target = "shop.example:443" if method == "CONNECT" else "/"
    answer = exchange(port, f"{method} {target} HTTP/1.1\r\nHost: shop.example\r\n\r\n".encode())
    assert error_of(answer) == (405, "method_not_allowed")
    assert answer is not None and "GET" in (answer.header("allow") or "")


def test_limits_are_measured_not_guessed(port: int) -> None:
    """Just under the limits is served: 8 KiB request line, 32 KiB and 100 fields."""
    target = "/" + "a" * (8192 - 1)
    fields = "".join(f"X-{i}: {'b' * 200}\r\n" for i in range(98))  # ~21 KiB, 100 fields
    raw = f"GET {target} HTTP/1.1\r\nHost: shop.example\r\n{fields}Connection: close\r\n\r\n"
    answer = exchange(port, raw.encode())
    assert answer is not None and answer.status == 200 and answer.body == target.encode()


# -- time --------------------------------------------------------------------------------


def test_slow_and_idle_connections_are_closed_while_others_are_served(port: int) -> None:
    # a few slowloris connections trickling a head, one that never says anything, one
    # trickling a consent body, and one idle after a complete exchange
    loris = [connect(port) for _ in range(4)]
    for sock in loris:
        sock.sendall(b"GET / HTTP/1.1\r\n")
    silent = connect(port)
    body = connect(port)
    body.sendall(
        b"POST /_consent/api/consent HTTP/1.1\r\nHost: shop.example\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
    )
    idle = connect(port)
    idle.sendall(b"GET /_consent/healthz HTTP/1.1\r\nHost: shop.example\r\n\r\n")
    first = read_answer(idle)
    assert first is not None and first.status == 200
    closed: dict[socket.socket, bytes] = {}
    got: dict[socket.socket, bytes] = {}  # what each sent before closing (over several polls)
    deadline = time.monotonic() + 15  # timeouts are 1 s: far more than enough
    trickling = [*loris, body]
    while len(closed) < 7 and time.monotonic() < deadline:
        for sock in trickling:
            if sock not in closed:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b"X" if sock is body else b"X-Slow: 1\r\n")
        for sock in [*trickling, silent, idle]:
            if sock not in closed:
                done, data = closed_within(sock, 0.05)
                got[sock] = got.get(sock, b"") + data
                if done:
                    closed[sock] = got[sock]
        assert health_answers(port)  # meanwhile, others are served
        time.sleep(0.2)
    for sock in [*trickling, silent, idle]:
        sock.close()
    assert len(closed) == 7
    for sock in loris:
        assert closed[sock].startswith(b"HTTP/1.1 408 "), closed[sock][:80]
    assert closed[body].startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in closed[body]
    assert closed[silent] == b"" and closed[idle] == b""


def test_a_trailer_bomb_is_refused_and_trailers_never_pass(
    port: int, upstream: RecordingUpstream
) -> None:
    head = (
        b"POST /%s HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n"
    )
    # a small trailer: the request is served, the trailer is not passed on
    answer = exchange(port, head % b"trailer-ok" + b"X-Trailer: yes\r\nHost: evil\r\n\r\n")
    assert answer is not None and answer.status == 200
    (seen,) = upstream.requests_for("/trailer-ok")
    assert seen.body == b"abc" and seen.header("x-trailer") is None
    assert seen.header("host") == "shop.example"
    # an endless one: refused once a head's worth has come, while others are served
    bomb = connect(port, timeout=10)
    bomb.sendall(head % b"trailer-bomb" + b"X-Bomb: ")
    piece = b"a" * (256 * 1024)
    for _ in range(64):  # up to 16 MiB
        try:
            bomb.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
    assert health_answers(port)
    assert error_of(read_answer(bomb)) == (431, "headers_too_large")
    bomb.close()
    assert upstream.requests_for("/trailer-bomb") == []
