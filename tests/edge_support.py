"""Shared by the tests/test_edge_*.py modules: a loopback upstream that records every
request it parses, a real ``consentgate serve`` in front of it with short timeouts, and
raw-socket helpers.

The upstream parses strictly (llhttp, like most real servers) and records each request
with the connection it arrived on: a smuggled request shows up as a request of its own.
It answers every request with its target as a ``text/plain`` body (so a visitor given
another visitor's answer sees it), ``/page`` with a small HTML page, and ``/redirect``
with a scheme-relative ``Location`` to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest

from tests import support

PAGE = (
    b"<!doctype html><html><head><title>t</title></head><body><p>hello</p>"
    b'<script src="https://www.googletagmanager.com/gtag/js?id=G-1"></script></body></html>'
)


@dataclass
class Seen:
    """One request as the upstream parsed it."""

    conn: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass
class RecordingUpstream:
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    garbage: list[bytes] = field(default_factory=list)  # what it could not parse

    def targets(self) -> list[str]:
        return [s.target for s in self.seen]

    def requests_for(self, target: str) -> list[Seen]:
        return [s for s in self.seen if s.target == target]


class _Conn(asyncio.Protocol):
    counter = 0

    def __init__(self, up: RecordingUpstream) -> None:
        _Conn.counter += 1
        self.id = _Conn.counter
        self.up = up
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: Seen | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.up.garbage.append(data)
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.current = Seen(self.id, "", "", [])

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        self.current.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self.current is not None
        self.current.method = self.parser.get_method().decode("latin-1")
        self.current.target = self.url.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        assert self.current is not None
        self.current.body += body

    def on_message_complete(self) -> None:
        seen = self.current
        assert seen is not None and self.transport is not None
        self.up.seen.append(seen)
        path = seen.target.split("?")[0]
        extra = b""
        if path == "/page":
            ctype, body = b"text/html; charset=utf-8", PAGE
        elif path == "/redirect":
            ctype, body = b"text/plain", b""
            extra = b"location: //127.0.0.1:%d/landing\r\n" % self.up.port
            head = b"HTTP/1.1 302 Found\r\n"
        else:
            ctype, body = b"text/plain", seen.target.encode("latin-1")
        if path != "/redirect":
            head = b"HTTP/1.1 200 OK\r\n"
        self.transport.write(
            head
            + extra
            + b"content-type: %s\r\ncontent-length: %d\r\n\r\n" % (ctype, len(body))
            + (b"" if seen.method == "HEAD" else body)
        )


@contextlib.contextmanager
def recording_upstream() -> Iterator[RecordingUpstream]:
    up = RecordingUpstream()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncio.Server:
        return await loop.create_server(lambda: _Conn(up), "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    up.port = server.sockets[0].getsockname()[1]
    try:
        yield up
    finally:

        async def stop() -> None:
            server.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


KEYS = "edge-test-key-0123456789abcdef"

#: short limits so the timeout tests take seconds, not minutes
EDGE_CONFIG = """\
[server]
trusted_proxies = []
request_header_timeout = 1.0
request_body_timeout = 1.0
keepalive_timeout = 1.0

[[sites]]
id = "pub"
hosts = ["pub.example"]
origins = ["https://www.pub.example"]
upstream = "http://127.0.0.1:{port}"

[[sites]]
id = "main"
upstream = "http://127.0.0.1:{port}"
"""


@contextlib.contextmanager
def edge_server(
    up: RecordingUpstream, data_dir: Path, config: str = EDGE_CONFIG
) -> Iterator[tuple[int, object]]:
    """``consentgate serve --config`` in front of ``up``: yields (port, process)."""
    path = data_dir / "edge.toml"
    path.write_text(config.format(port=up.port))
    with support.consentgate_server(
        "--config", str(path), "--data-dir", str(data_dir), env={"CONSENTGATE_SECRET_KEYS": KEYS}
    ) as (base, proc):
        yield int(base.rsplit(":", 1)[1]), proc


@pytest.fixture(scope="module", name="upstream")
def upstream_fixture() -> Iterator[RecordingUpstream]:
    """A module's recording upstream (import the fixture, ask for ``upstream``)."""
    with recording_upstream() as up:
        yield up


@pytest.fixture(scope="module", name="port")
def port_fixture(
    upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The port of a module's ``consentgate serve`` (EDGE_CONFIG) in front of ``upstream``."""
    with edge_server(upstream, tmp_path_factory.mktemp("edge")) as (port, _):
        yield port


# -- raw sockets --------------------------------------------------------------------------


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def read_answer(sock: socket.socket, head_request: bool = False) -> Answer | None:
    """One response from ``sock`` (framed by Content-Length or chunked), or None when
    the connection closed before a response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:])]
    answer = Answer(status, headers, b"")
    if head_request or status in (204, 304):
        return answer
    length = answer.header("content-length")
    if length is not None:
        while len(rest) < int(length):
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        answer.body = rest[: int(length)]
        return answer
    if (answer.header("transfer-encoding") or "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                break
        answer.body = body
        return answer
    while data := sock.recv(65536):
        rest += data
    answer.body = rest
    return answer


def exchange(port: int, raw: bytes, head_request: bool = False) -> Answer | None:
    """Send ``raw`` on a fresh connection and read one response."""
    with connect(port) as sock:
        sock.sendall(raw)
        return read_answer(sock, head_request)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """(whether the server closed ``sock`` within ``seconds``, what it sent first)."""
    deadline = time.monotonic() + seconds
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return True, got
        if not data:
            return True, got
        got += data
    return False, got


def get(port: int, target: str, host: str = "shop.example", extra: str = "") -> Answer:
    answer = exchange(
        port, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()
    )
    assert answer is not None
    return answer
