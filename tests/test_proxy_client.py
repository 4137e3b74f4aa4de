"""The upstream client against a scripted server on loopback: responses whose head was
parsed before are framed by their Content-Length without the parser, and still fail,
finish and return to the pool exactly as parsed ones do; read timeouts fire from the
periodic sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from consentgate.proxy import client
from consentgate.proxy.client import Origin, UpstreamProtocolError, UpstreamTimeout
from consentgate.proxy.pool import UpstreamPool

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\n"
BODY = b"0123456789"


CLOSE = b"<close>"  # in a reply: close the connection there


@dataclass
class Script:
    """The writes the server makes for each request, in order; a short pause between
    two writes of one reply, so they reach the client as separate reads."""

    replies: list[tuple[bytes, ...]]
    connections: int = 0


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, Origin]]:
    script = Script([])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                for i, part in enumerate(script.replies.pop(0)):
                    if part == CLOSE:
                        return
                    if i:
                        await asyncio.sleep(0.05)
                    writer.write(part)
                    await writer.drain()
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield script, Origin("http", "127.0.0.1", port)
    finally:
        srv.close()
        await srv.wait_closed()


async def _get(pool: UpstreamPool, origin: Origin) -> bytes:
    resp = await pool.request(origin, "GET", b"/", [(b"host", b"example")])
    try:
        return b"".join([chunk async for chunk in resp.iter_body()])
    finally:
        resp.close()


async def test_a_known_head_is_framed_without_the_parser(
    server: tuple[Script, Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    script, origin = server
    parsers = []
    real = client.httptools.HttpResponseParser

    def counted(protocol: object) -> object:
        parsers.append(protocol)
        return real(protocol)

    monkeypatch.setattr(client.httptools, "HttpResponseParser", counted)
    script.replies = [(HEAD + BODY,), (HEAD + BODY,), (HEAD + BODY[:4], BODY[4:])]
    pool = UpstreamPool(1.0, 2.0)
    try:
        assert await _get(pool, origin) == BODY
        assert len(pool.heads) == 1
        assert await _get(pool, origin) == BODY
        assert await _get(pool, origin) == BODY  # the body in two reads
        assert script.connections == 1  # every response ended cleanly: one connection
        assert len(parsers) == 1  # only the first response needed the parser
    finally:
        await pool.aclose()


async def test_a_known_head_cut_mid_body_is_an_error(server: tuple[Script, Origin]) -> None:
    script, origin = server
    script.replies = [(HEAD + BODY,), (HEAD + BODY[:4], CLOSE)]
    pool = UpstreamPool(1.0, 2.0)
    try:
        assert await _get(pool, origin) == BODY
        resp = await pool.request(origin, "GET", b"/", [(b"host", b"example")])
        with pytest.raises(UpstreamProtocolError):
            while await resp.read():
                pass
        resp.close()
    finally:
        await pool.aclose()


async def test_bytes_after_a_known_body_keep_the_connection_out_of_the_pool(
    server: tuple[Script, Origin],
) -> None:
    script, origin = server
    script.replies = [(HEAD + BODY,), (HEAD + BODY + b"HTTP/1.1 200 OK\r\n",), (HEAD + BODY,)]
    pool = UpstreamPool(1.0, 2.0)
    try:
        assert await _get(pool, origin) == BODY
        assert await _get(pool, origin) == BODY
        assert await _get(pool, origin) == BODY
        assert script.connections == 2  # the connection with stray bytes was not reused
    finally:
        await pool.aclose()


async def test_head_requests_and_new_heads_still_go_through_the_parser(
    server: tuple[Script, Origin],
) -> None:
    script, origin = server
    other = HEAD.replace(b"text/html", b"text/plain")
    script.replies = [(HEAD + BODY,), (HEAD,), (other + BODY,)]
    pool = UpstreamPool(1.0, 2.0)
    try:
        assert await _get(pool, origin) == BODY
        resp = await pool.request(origin, "HEAD", b"/", [(b"host", b"example")])
        assert resp.status == 200 and await resp.read() == b""
        resp.close()
        resp = await pool.request(origin, "GET", b"/", [(b"host", b"example")])
        assert (b"content-type", b"text/plain") in resp.headers
        assert await resp.read() == BODY
        resp.close()
        assert script.connections == 1
    finally:
        await pool.aclose()


async def test_a_stalled_upstream_times_out_through_the_sweep(
    server: tuple[Script, Origin],
) -> None:
    script, origin = server
    script.replies = [(HEAD + BODY[:2],)]  # then nothing: the rest never comes
    pool = UpstreamPool(1.0, 0.3)
    try:
        resp = await pool.request(origin, "GET", b"/", [(b"host", b"example")])
        assert await resp.read() == BODY[:2]
        with pytest.raises(UpstreamTimeout):
            await resp.read()
        resp.close()
    finally:
        await pool.aclose()


async def _get_with_head(pool: UpstreamPool, origin: Origin) -> tuple[dict[bytes, bytes], bytes]:
    resp = await pool.request(origin, "GET", b"/", [(b"host", b"example")])
    try:
        body = b"".join([chunk async for chunk in resp.iter_body()])
        return dict(resp.headers), body
    finally:
        resp.close()


def _reply(prefix: bytes, who: bytes) -> bytes:
    return prefix + b"HTTP/1.1 200 OK\r\nX-Visitor: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        who,
        len(who),
        who,
    )


@pytest.mark.parametrize(
    "prefix",
    [b"\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"],
    ids=["blank-lines-first", "interim-1xx-first"],
)
async def test_only_a_final_head_from_its_status_line_is_remembered(
    server: tuple[Script, Origin], prefix: bytes
) -> None:
    """llhttp skips blank lines before a status line, and a 1xx may share the read with
    the final head: neither prefix may become the key another response is framed by
    (it would get this response's headers, Set-Cookie included)."""
    script, origin = server
    script.replies = [(_reply(prefix, b"one"),), (_reply(prefix, b"second"),)]
    pool = UpstreamPool(1.0, 5.0)
    try:
        first = await _get_with_head(pool, origin)
        second = await _get_with_head(pool, origin)
    finally:
        await pool.aclose()
    assert first == ({b"x-visitor": b"one", b"content-length": b"3"}, b"one")
    assert second == ({b"x-visitor": b"second", b"content-length": b"6"}, b"second")
    assert not any(key.startswith((b"\r", b"HTTP/1.1 100")) for key in pool.heads)


async def test_an_early_answer_to_an_upload_keeps_the_connection_out_of_the_pool() -> None:
    """The upstream answers 413 before the body is through (and then reads the rest, as
    a keep-alive server must): the connection may not serve the next request, which the
    upstream would read as more body."""
    bodies: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if head.startswith(b"POST"):
                    writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    bodies.append(await reader.readexactly(length))
                else:
                    writer.write(HEAD + BODY)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    origin = Origin("http", "127.0.0.1", srv.sockets[0].getsockname()[1])
    pool = UpstreamPool(1.0, 5.0)
    opened: list[client._Connection] = []
    real_connect = pool._connect

    async def connect(o: Origin) -> client._Connection:
        conn = await real_connect(o)
        opened.append(conn)
        return conn

    pool._connect = connect  # type: ignore[method-assign]

    async def upload() -> AsyncIterator[bytes]:
        yield b"x" * 50
        conn = opened[0]
        while conn.response is not None and not conn.response.got_headers:
            await asyncio.sleep(0.01)  # until the 413 is in
        yield b"y" * 50

    try:
        resp = await asyncio.wait_for(
            pool.request(
                origin, "POST", b"/up", [(b"host", b"h"), (b"content-length", b"100")], upload()
            ),
            10,
        )
        assert resp.status == 413
        resp.close()
        assert await asyncio.wait_for(_get(pool, origin), 10) == BODY
    finally:
        await pool.aclose()
        srv.close()
        await srv.wait_closed()
    assert connections == 2 and len(opened) == 2


@pytest.mark.parametrize("how", ["given-up", "timed-out"])
async def test_a_close_delimited_body_cut_short_is_not_complete(
    server: tuple[Script, Origin], how: str
) -> None:
    """A body that ends when the connection closes: once the proxy gives up on it (the
    visitor left) or it times out, the close is not its end: reading raises, and a
    recording is never made of half a page."""
    script, origin = server
    script.replies = [(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst half", b"x" * 0)]
    pool = UpstreamPool(1.0, 0.3)
    try:
        resp = await pool.request(origin, "GET", b"/", [(b"host", b"example")])
        assert await resp.read() == b"first half"
        if how == "given-up":
            resp.close()
        with pytest.raises((UpstreamProtocolError, UpstreamTimeout)):
            await asyncio.wait_for(resp.read(), 10)
        assert not resp.complete
    finally:
        await pool.aclose()
