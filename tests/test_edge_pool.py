"""consentgate/proxy/pool.py: a pooled upstream connection is reused only when the
exchange on it ended exactly at a message boundary; a request body that does not end at
its declared length fails the request and spoils its connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from consentgate.proxy.client import Origin, UpstreamProtocolError
from consentgate.proxy.pool import UpstreamPool


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Origin, list[bytes]]]:
    """Reads each request (its body by Content-Length), answers with its request line,
    records the heads."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received.append(head)
                for field in head.lower().split(b"\r\n"):
                    if field.startswith(b"content-length:"):
                        await reader.readexactly(int(field.split(b":")[1]))
                line = head.split(b"\r\n", 1)[0]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield Origin("http", "127.0.0.1", srv.sockets[0].getsockname()[1]), received
    finally:
        srv.close()
        await srv.wait_closed()


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize("chunks", [(b"abc",), (b"abcdefgh", b"ijk")], ids=["short", "long"])
async def test_a_body_off_its_declared_length_spoils_the_connection(
    upstream: tuple[Origin, list[bytes]], chunks: tuple[bytes, ...]
) -> None:
    origin, received = upstream
    pool = UpstreamPool(1.0, 5.0)
    try:
        headers = [(b"host", b"h"), (b"content-length", b"5")]
        with pytest.raises(UpstreamProtocolError, match="declared"):
            await pool.request(origin, "POST", b"/up", headers, body(*chunks))
        # the next request is not read as the rest of that body: it gets its own answer
        resp = await pool.request(origin, "GET", b"/next", [(b"host", b"h")])
        assert b"".join([c async for c in resp.iter_body()]) == b"GET /next HTTP/1.1"
        resp.close()
    finally:
        await pool.aclose()
    assert [h.split(b"\r\n", 1)[0] for h in received][-1] == b"GET /next HTTP/1.1"


async def test_an_exact_body_keeps_the_connection_for_the_next_request(
    upstream: tuple[Origin, list[bytes]],
) -> None:
    origin, _ = upstream
    pool = UpstreamPool(1.0, 5.0)
    try:
        headers = [(b"host", b"h"), (b"content-length", b"5")]
        resp = await pool.request(origin, "POST", b"/up", headers, body(b"ab", b"cde"))
        assert b"".join([c async for c in resp.iter_body()]) == b"POST /up HTTP/1.1"
        resp.close()
        resp = await pool.request(origin, "GET", b"/next", [(b"host", b"h")])
        assert b"".join([c async for c in resp.iter_body()]) == b"GET /next HTTP/1.1"
        resp.close()
        assert sum(len(idle) for idle in pool._idle.values()) == 1  # one connection, reused
    finally:
        await pool.aclose()


async def test_an_endless_response_head_is_cut_off_as_it_arrives() -> None:
    """A response header that never ends: the client gives up once the head limit has
    come (the parser would gather it by concatenation), not after the whole of it."""
    total = 32 * 1024 * 1024
    sent = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        piece = b"a" * (64 * 1024)
        try:
            while sent < total:
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
            writer.write(b"\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    origin = Origin("http", "127.0.0.1", srv.sockets[0].getsockname()[1])
    pool = UpstreamPool(1.0, 30.0)
    try:
        with pytest.raises(UpstreamProtocolError, match="too large"):
            await pool.request(origin, "GET", b"/", [(b"host", b"h")])
        assert sent < total // 2  # given up long before the head could end
    finally:
        await pool.aclose()
        srv.close()
        await srv.wait_closed()
