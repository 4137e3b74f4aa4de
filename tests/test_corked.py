"""consentgate/corked.py: a response head is held for the body and both leave in one
write; nothing is reordered, lost, or held past the event-loop iteration."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from consentgate.config import load_settings
from consentgate.corked import HOLD_MAX, CorkedTransport, protocol_class
from consentgate.server import _uvicorn_options
from tests.support import free_port


class Recording:
    """The lower transport: records each write call (one call = one send syscall)."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, ...]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append((data,))

    def writelines(self, chunks: tuple[bytes, ...]) -> None:
        self.calls.append(tuple(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def test_head_and_body_leave_in_one_write() -> None:
    lower = Recording()
    t = CorkedTransport(lower, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert lower.calls == []
    t.write(b"body" * 1000)
    assert lower.calls == [(b"HTTP/1.1 200 OK\r\n\r\n", b"body" * 1000)]


async def test_a_held_write_goes_out_by_the_end_of_the_iteration() -> None:
    lower = Recording()
    t = CorkedTransport(lower, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"small")
    await asyncio.sleep(0)
    assert lower.calls == [(b"small",)]


async def test_big_writes_are_not_held_and_order_is_kept() -> None:
    lower = Recording()
    t = CorkedTransport(lower, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * (HOLD_MAX + 1)
    t.write(big)
    t.write(b"a")
    t.writelines([b"b", b"c"])
    t.write(b"d")
    t.close()
    assert b"".join(b"".join(c) for c in lower.calls) == big + b"abcd"
    assert lower.closed


async def test_abort_drops_a_held_write() -> None:
    lower = Recording()
    t = CorkedTransport(lower, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"head")
    t.abort()
    await asyncio.sleep(0)
    assert lower.calls == [] and lower.closed


async def test_over_a_real_socket() -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
    t = CorkedTransport(transport, loop)  # type: ignore[arg-type]
    for i in range(50):
        t.write(b"head%d;" % i)
        t.write(b"body%d;" % i)
    t.write(b"end")
    await asyncio.sleep(0)
    b.setblocking(False)
    got = b""
    while not got.endswith(b"end"):
        await asyncio.sleep(0.01)
        with contextlib.suppress(BlockingIOError):
            got += b.recv(65536)
    assert got == b"".join(b"head%d;body%d;" % (i, i) for i in range(50)) + b"end"
    t.close()
    b.close()


def test_serve_uses_the_corked_protocol(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path)})
    assert _uvicorn_options(settings)["http"] is protocol_class()
    assert protocol_class() != "auto"  # httptools comes with uvicorn[standard]


def test_serve_keeps_freed_heap_for_reuse() -> None:
    import platform

    from consentgate.server import tune_malloc

    # glibc here (the CI image is Debian): the mallopt calls must all be accepted
    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")


async def test_response_heads_over_a_real_server() -> None:
    # repeated header lists (checked and serialized once), Connection: close, chunked
    # framing and a header value uvicorn refuses: all as uvicorn itself handles them
    import uvicorn

    body = b"<p>hello</p>"
    lists = {
        "/": [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(body))],
        "/close": [(b"content-length", b"%d" % len(body)), (b"connection", b"close")],
        "/chunked": [(b"content-type", b"text/html")],
        "/bad": [(b"x-bad", b"a\nb"), (b"content-length", b"%d" % len(body))],
    }

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        start = {"type": "http.response.start", "status": 200, "headers": lists[scope["path"]]}
        await send(start)  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]

    async def fetch(path: str, keep: bool = False) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        close = b"" if keep else b"Connection: close\r\n"
        writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), close))
        answer = await reader.read()  # until the server closes
        writer.close()
        return answer

    port = free_port()
    config = uvicorn.Config(app, port=port, http=protocol_class(), log_level="critical")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        for _ in range(3):
            head, _, got = (await fetch("/")).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and got == body
            assert b"\r\ncontent-type: text/html\r\n" in head
        head, _, got = (await fetch("/close", keep=True)).partition(b"\r\n\r\n")
        assert got == body and b"\r\nconnection: close" in head  # and the server hung up
        head, _, got = (await fetch("/chunked")).partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        assert got == b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        assert b"a\nb" not in await fetch("/bad")  # refused, never written
    finally:
        server.should_exit = True
        await task
