"""Keep-alive connections to the upstreams, and sending one request."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

from .client import (
    Deadlines,
    Origin,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeout,
    _Connection,
    _KnownHead,
    sweep_tick,
)

__all__ = ["MAX_IDLE_PER_ORIGIN", "UpstreamPool"]

MAX_IDLE_PER_ORIGIN = 64


class UpstreamPool:
    """Keep-alive connections per upstream origin."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._deadlines: Deadlines | None = None
        #: raw response heads already parsed -> what they said (see client.py)
        self.heads: dict[bytes, _KnownHead] = {}

    def deadlines(self) -> Deadlines:
        """The read-timeout sweep of this pool (made on first use, in the running loop)."""
        found = self._deadlines
        loop = asyncio.get_running_loop()
        if found is None or found.loop is not loop:
            found = self._deadlines = Deadlines(loop, sweep_tick(self.read_timeout))
        return found

    def _release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.abort()
            return
        conn.reused = True
        idle.append(conn)

    async def _connect(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if (
                conn.reusable
                and not conn.closed
                and conn.transport is not None
                and not conn.transport.is_closing()
            ):
                return conn
            conn.abort()
        loop = asyncio.get_running_loop()
        context = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamTimeout("connect", self.connect_timeout) from None
        except OSError as exc:
            raise UpstreamConnectError(
                f"cannot connect to {origin.url}: {exc.strerror or exc}"
            ) from None
        return conn

    async def request(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None = None,
        chunked: bool = False,
    ) -> UpstreamResponse:
        """Send a request; returns once the response headers are in.

        ``body`` is streamed as is (the caller set Content-Length) or, with ``chunked``,
        in chunked transfer coding. A body that does not end exactly at its declared
        length fails the request and its connection is never reused. A request without
        a body is retried once on a fresh connection when a reused keep-alive
        connection turns out to be dead.
        """
        head = b"".join(
            [
                method.encode("ascii"),
                b" ",
                target,
                b" HTTP/1.1\r\n",
                *[b"%s: %s\r\n" % (n, v) for n, v in headers],
                b"\r\n",
            ]
        )
        attempts = 1 if body is not None else 2
        deadlines = self.deadlines()
        for attempt in range(attempts):
            conn = await self._connect(origin)
            resp = UpstreamResponse(conn, self.read_timeout, method == "HEAD", deadlines)
            conn.start(resp)
            try:
                await conn.write(head)
                if body is not None:
                    length = None if chunked else _declared_length(headers)
                    await self._send_body(conn, resp, body, length)
                await resp.wait_headers()
            except UpstreamProtocolError:
                resp.close()
                if conn.reused and attempt + 1 < attempts and not resp.got_headers:
                    continue
                raise
            except BaseException:
                resp.close()
                raise
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_body(
        self,
        conn: _Connection,
        resp: UpstreamResponse,
        body: AsyncIterator[bytes],
        length: int | None,
    ) -> None:
        """Send ``body``: exactly ``length`` bytes, or chunked when ``length`` is None."""
        # While the body goes out the connection cannot go back to the pool, even if the
        # upstream answers early (e.g. 413): the next request would be read as the rest
        # of this body.
        conn.sending = True
        sent = 0
        try:
            async for chunk in body:
                if resp.got_headers:  # the upstream answered early: stop sending
                    conn.reusable = False
                    return
                if not chunk:
                    continue
                if length is None:
                    await conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    continue
                sent += len(chunk)
                if sent > length:
                    break
                await conn.write(chunk)
            if length is None:
                await conn.write(b"0\r\n\r\n")
            elif sent != length:  # not at the message boundary: the connection is spoiled
                conn.reusable = False
                conn.abort()
                raise UpstreamProtocolError(
                    f"request body of {sent} bytes where {length} were declared"
                )
        except UpstreamProtocolError:
            if not resp.got_headers:
                raise
            conn.reusable = False  # answered, then closed while we were still sending
        finally:
            conn.sending = False

    async def aclose(self) -> None:
        if self._deadlines is not None:
            self._deadlines.close()
            self._deadlines = None
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        await asyncio.sleep(0)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    raise ValueError("a request body needs a Content-Length or chunked framing")
